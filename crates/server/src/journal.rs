//! The rooms' journal kept in the store: the room crate defines what it journals
//! (`huddle_room::MpcJournal`), the store (below it) how records are kept; this adapter
//! converts between the two.

use std::time::SystemTime;

use huddle_callflow::{CallRecording, RecordJournal};
use huddle_events::CallParams;
use huddle_record::Format;
use huddle_room::snapshot::{MpcSnapshot, ParticipantSnapshot};
use huddle_room::state::Status;
use huddle_room::{
    LiveMpc, LiveRecording, MemberRef, MpcJournal, RecordingKind, TerminationCause, TrackKind,
    TrackSource,
};
use huddle_roomport::MemberId;
use huddle_store::mpcs::{
    CallRecordingRecord, CallbackTarget, MemberRecord, MpcRecord, RecordedMember, RecordingRecord,
};
use huddle_store::Store;
use huddle_xml::{Role, StatusEvent, UrlWithMethod};

/// Journals rooms into the store. Every call builds a record and hands it to the store's
/// writer thread; nothing here waits on the disk.
pub(crate) struct StoreJournal {
    pub(crate) store: Store,
}

impl MpcJournal for StoreJournal {
    fn live(&self, mpc: LiveMpc) {
        self.store.mpc_live(live_record(&mpc));
    }

    fn ended(&self, snapshot: &MpcSnapshot) {
        self.store.mpc_ended(
            mpc_record(snapshot, None, &[]),
            huddle_room::registry::ENDED_KEPT,
        );
    }

    fn recording_started(&self, recording: LiveRecording) {
        self.store.recording_started(recording_record(&recording));
    }
}

impl RecordJournal for StoreJournal {
    fn started(&self, recording: &CallRecording) {
        self.store
            .recording_started(call_recording_record(recording));
    }

    fn finished(&self, id: &str) {
        self.store.recording_finished(id);
    }
}

fn target(callback: &Option<UrlWithMethod>) -> Option<CallbackTarget> {
    callback.as_ref().map(|c| CallbackTarget {
        url: c.url.clone(),
        method: c.method,
    })
}

fn url_with_method(target: &Option<CallbackTarget>) -> Option<UrlWithMethod> {
    target.as_ref().map(|t| UrlWithMethod {
        url: t.url.clone(),
        method: t.method,
    })
}

/// The record of a journaled live MPC.
pub(crate) fn live_record(mpc: &LiveMpc) -> MpcRecord {
    mpc_record(
        &mpc.snapshot,
        mpc.status_callback.as_ref(),
        &mpc.status_callback_events,
    )
}

/// The record of an MPC's view, with its status callback when it is journaled live.
pub(crate) fn mpc_record(
    s: &MpcSnapshot,
    status_callback: Option<&UrlWithMethod>,
    status_callback_events: &[StatusEvent],
) -> MpcRecord {
    MpcRecord {
        uuid: s.uuid.to_string(),
        name: s.name.clone(),
        status: s.status.as_str().to_string(),
        created: s.created,
        started: s.started,
        ended: s.ended,
        termination_code: s.termination.map(|c| c.code()),
        max_participants: s.max_participants,
        max_duration: s.max_duration,
        stay_alone: s.stay_alone,
        recording: s.recording.as_ref().map(|(id, p)| (id.to_string(), *p)),
        participants: s
            .participants
            .iter()
            .map(|p| MemberRecord {
                member_id: p.member_id.get(),
                call_uuid: p.call_uuid.to_string(),
                member_address: p.member_address.clone(),
                role: p.role.as_str().to_string(),
                muted: p.muted,
                held: p.held,
                coach_mode: p.coach_mode,
                start_mpc_on_enter: p.start_mpc_on_enter,
                end_mpc_on_exit: p.end_mpc_on_exit,
                joined: p.joined,
                exited: p.exited,
                exit_cause: p.exit_cause.clone(),
            })
            .collect(),
        status_callback: status_callback.and_then(|c| target(&Some(c.clone()))),
        status_callback_events: status_callback_events
            .iter()
            .map(|e| e.as_str().to_string())
            .collect(),
    }
}

fn role(text: &str) -> Option<Role> {
    [Role::Agent, Role::Supervisor, Role::Customer, Role::AiAgent]
        .into_iter()
        .find(|r| r.as_str() == text)
}

fn status(text: &str) -> Option<Status> {
    [Status::Initialized, Status::Active, Status::Ended]
        .into_iter()
        .find(|s| s.as_str() == text)
}

/// The view of a stored MPC; None (logged) for a record this version cannot read.
pub(crate) fn snapshot_of(r: &MpcRecord) -> Option<MpcSnapshot> {
    let unreadable = |what: &str| {
        tracing::warn!(mpc_uuid = %r.uuid, what, "stored MPC skipped: unreadable field");
    };
    let Some(status) = status(&r.status) else {
        unreadable("status");
        return None;
    };
    let mut participants = Vec::with_capacity(r.participants.len());
    for p in &r.participants {
        let Some(role) = role(&p.role) else {
            unreadable("role");
            return None;
        };
        participants.push(ParticipantSnapshot {
            member_id: MemberId(p.member_id),
            call_uuid: p.call_uuid.as_str().into(),
            member_address: p.member_address.clone(),
            role,
            muted: p.muted,
            held: p.held,
            coach_mode: p.coach_mode,
            start_mpc_on_enter: p.start_mpc_on_enter,
            end_mpc_on_exit: p.end_mpc_on_exit,
            joined: p.joined,
            exited: p.exited,
            exit_cause: p.exit_cause.clone(),
        });
    }
    Some(MpcSnapshot {
        uuid: r.uuid.as_str().into(),
        name: r.name.clone(),
        status,
        created: r.created,
        started: r.started,
        ended: r.ended,
        termination: r.termination_code.and_then(TerminationCause::from_code),
        max_participants: r.max_participants,
        max_duration: r.max_duration,
        stay_alone: r.stay_alone,
        recording: r
            .recording
            .as_ref()
            .map(|(id, paused)| (id.as_str().into(), *paused)),
        participants,
    })
}

/// A journaled live MPC; None (logged) for a record this version cannot read.
pub(crate) fn live_of(r: &MpcRecord) -> Option<LiveMpc> {
    Some(LiveMpc {
        snapshot: snapshot_of(r)?,
        status_callback: url_with_method(&r.status_callback),
        status_callback_events: r
            .status_callback_events
            .iter()
            .filter_map(|name| {
                StatusEvent::ALL
                    .into_iter()
                    .find(|e| e.as_str() == name.as_str())
            })
            .collect(),
    })
}

fn recording_record(r: &LiveRecording) -> RecordingRecord {
    let (kind, member) = match &r.kind {
        RecordingKind::Mpc => ("", None),
        RecordingKind::Track(TrackSource::Roles) => ("roles", None),
        RecordingKind::Track(TrackSource::Member(m, track)) => (
            track.as_str(),
            Some(RecordedMember {
                member_id: m.member_id.get(),
                role: m.role.as_str().to_string(),
                call_uuid: m.call_uuid.to_string(),
                coach_mode: m.coach_mode,
            }),
        ),
    };
    RecordingRecord {
        kind: kind.to_string(),
        member,
        id: r.id.to_string(),
        mpc_uuid: r.mpc_uuid.to_string(),
        mpc_name: r.mpc_name.clone(),
        path: r.path.clone(),
        format: r.format.extension().to_string(),
        started: r.started,
        callback: target(&r.callback),
        call: None,
    }
}

/// The journal entry of a `<Record>` file: no MPC, its call instead.
fn call_recording_record(r: &CallRecording) -> RecordingRecord {
    RecordingRecord {
        id: r.id.clone(),
        mpc_uuid: String::new(),
        mpc_name: String::new(),
        path: r.path.clone(),
        format: r.format.extension().to_string(),
        started: r.started,
        callback: target(&r.callback),
        call: Some(CallRecordingRecord {
            call_uuid: r.call.call_uuid.clone(),
            from: r.call.from.clone(),
            to: r.call.to.clone(),
            direction: r.call.direction.to_string(),
            url: r.url.clone(),
        }),
        kind: String::new(),
        member: None,
    }
}

/// A journaled `<Record>` file; None for an MPC's recording, or (logged) a record this
/// version cannot read.
pub(crate) fn call_recording_of(r: &RecordingRecord) -> Option<CallRecording> {
    let call = r.call.as_ref()?;
    let Some(format) = format_of(&r.format) else {
        tracing::warn!(recording = %r.id, format = %r.format, "stored recording skipped: unknown format");
        return None;
    };
    // The direction is one of two words; anything else is a damaged record.
    let direction = match call.direction.as_str() {
        "inbound" => "inbound",
        "outbound" => "outbound",
        other => {
            tracing::warn!(recording = %r.id, direction = other, "stored recording skipped: unknown direction");
            return None;
        }
    };
    Some(CallRecording {
        id: r.id.clone(),
        path: r.path.clone(),
        format,
        url: call.url.clone(),
        started: r.started,
        callback: url_with_method(&r.callback),
        call: CallParams {
            call_uuid: call.call_uuid.clone(),
            from: call.from.clone(),
            to: call.to.clone(),
            direction,
        },
    })
}

fn format_of(text: &str) -> Option<Format> {
    match text {
        "wav" => Some(Format::Wav),
        "mp3" => Some(Format::Mp3),
        _ => None,
    }
}

/// A journaled recording; None (logged) for a record this version cannot read.
pub(crate) fn recording_of(r: &RecordingRecord) -> Option<LiveRecording> {
    let format = match r.format.as_str() {
        "wav" => Format::Wav,
        "mp3" => Format::Mp3,
        other => {
            tracing::warn!(recording = %r.id, format = other, "stored recording skipped: unknown format");
            return None;
        }
    };
    let unreadable = || {
        tracing::warn!(recording = %r.id, kind = %r.kind, "stored recording skipped: unreadable kind");
    };
    let member = |track: TrackKind| {
        let m = r.member.as_ref()?;
        Some(RecordingKind::Track(TrackSource::Member(
            MemberRef {
                member_id: MemberId(m.member_id),
                role: role(&m.role)?,
                call_uuid: m.call_uuid.as_str().into(),
                coach_mode: m.coach_mode,
            },
            track,
        )))
    };
    let kind = match r.kind.as_str() {
        "" => Some(RecordingKind::Mpc),
        "roles" => Some(RecordingKind::Track(TrackSource::Roles)),
        "participant" => member(TrackKind::Participant),
        "all" => member(TrackKind::Around),
        _ => None,
    };
    let Some(kind) = kind else {
        unreadable();
        return None;
    };
    Some(LiveRecording {
        kind,
        id: r.id.as_str().into(),
        mpc_uuid: r.mpc_uuid.as_str().into(),
        mpc_name: r.mpc_name.clone(),
        path: r.path.clone(),
        format,
        started: r.started,
        callback: url_with_method(&r.callback),
    })
}

/// The latest time an MPC's view shows it alive.
pub(crate) fn last_seen(s: &MpcSnapshot) -> SystemTime {
    s.participants
        .iter()
        .flat_map(|p| [Some(p.joined), p.exited])
        .chain([Some(s.created), s.started])
        .flatten()
        .max()
        .unwrap_or(s.created)
}

#[cfg(test)]
mod tests {
    use super::*;
    use huddle_room::ExitCause;
    use huddle_xml::HttpMethod;
    use std::time::Duration;

    #[test]
    fn a_journaled_mpc_reads_back_as_it_was() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let participant = |id: u64, role: Role, exited: Option<SystemTime>| ParticipantSnapshot {
            member_id: MemberId(id),
            call_uuid: format!("call-{id}").into(),
            member_address: "sip:a@127.0.0.1".into(),
            role,
            muted: true,
            held: false,
            coach_mode: role == Role::Supervisor,
            start_mpc_on_enter: true,
            end_mpc_on_exit: role == Role::Agent,
            joined: t0,
            exited,
            exit_cause: exited.map(|_| ExitCause::KickedOut.name().to_string()),
        };
        let live = LiveMpc {
            snapshot: MpcSnapshot {
                uuid: "u-1".into(),
                name: "sales".into(),
                status: Status::Active,
                created: t0,
                started: Some(t0 + Duration::from_secs(1)),
                ended: None,
                termination: None,
                max_participants: 5,
                max_duration: 300,
                stay_alone: true,
                recording: Some(("r-1".into(), true)),
                participants: vec![
                    participant(10_000, Role::Agent, None),
                    participant(10_001, Role::AiAgent, Some(t0 + Duration::from_secs(9))),
                    participant(10_002, Role::Supervisor, None),
                    participant(10_003, Role::Customer, None),
                ],
            },
            status_callback: Some(UrlWithMethod {
                url: "http://127.0.0.1:1/s".into(),
                method: HttpMethod::Get,
            }),
            status_callback_events: StatusEvent::ALL.to_vec(),
        };
        let record = live_record(&live);
        assert_eq!(live_of(&record), Some(live.clone()));
        assert_eq!(last_seen(&live.snapshot), t0 + Duration::from_secs(9));
        let (_, ended) = live.end(
            t0 + Duration::from_secs(20),
            TerminationCause::ServerRestarted,
        );
        assert_eq!(snapshot_of(&mpc_record(&ended, None, &[])), Some(ended));
    }

    #[test]
    fn journaled_recordings_of_every_kind_read_back_as_they_were() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let member = MemberRef {
            member_id: MemberId(10_004),
            role: Role::AiAgent,
            call_uuid: "call-4".into(),
            coach_mode: false,
        };
        let kinds = [
            RecordingKind::Mpc,
            RecordingKind::Track(TrackSource::Roles),
            RecordingKind::Track(TrackSource::Member(member.clone(), TrackKind::Participant)),
            RecordingKind::Track(TrackSource::Member(member, TrackKind::Around)),
        ];
        for kind in kinds {
            let live = LiveRecording {
                id: "r-1".into(),
                mpc_uuid: "u-1".into(),
                mpc_name: "sales".into(),
                path: "/tmp/r-1.wav".into(),
                format: Format::Wav,
                started: t0,
                callback: Some(UrlWithMethod {
                    url: "http://127.0.0.1:1/rec".into(),
                    method: HttpMethod::Post,
                }),
                kind,
            };
            assert_eq!(recording_of(&recording_record(&live)), Some(live));
        }
        // A record from before the kinds existed is the MPC's recording; an unknown kind or a
        // participant recording without its member is skipped, not misreported.
        let mut old = recording_record(&LiveRecording {
            id: "r-2".into(),
            mpc_uuid: "u-1".into(),
            mpc_name: "sales".into(),
            path: "/tmp/r-2.mp3".into(),
            format: Format::Mp3,
            started: t0,
            callback: None,
            kind: RecordingKind::Mpc,
        });
        let json = serde_json::to_value(&old).unwrap();
        let mut without = json.as_object().unwrap().clone();
        without.remove("kind");
        without.remove("member");
        let read: RecordingRecord = serde_json::from_value(without.into()).unwrap();
        assert_eq!(
            recording_of(&read).map(|r| r.kind),
            Some(RecordingKind::Mpc)
        );
        old.kind = "quadraphonic".into();
        assert_eq!(recording_of(&old), None);
        old.kind = "participant".into();
        assert_eq!(recording_of(&old), None);
    }
}
