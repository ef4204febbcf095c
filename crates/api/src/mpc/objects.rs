//! The MPC and participant objects as Plivo's API writes them (mpc-api.md §2–3): the field
//! names and JSON types every SDK decodes (member ids and amounts as strings, timestamps as
//! `YYYY-MM-DD HH:mm:ss+00:00`, `null` for what does not apply yet).

use std::time::SystemTime;

use huddle_room::clock::plivo_timestamp;
use huddle_room::{MpcSnapshot, ParticipantSnapshot};
use huddle_roomport::MpcUuid;
use serde_json::{json, Value};

fn time(t: Option<SystemTime>) -> Value {
    t.map_or(Value::Null, |t| Value::String(plivo_timestamp(t)))
}

fn seconds_between(from: Option<SystemTime>, to: Option<SystemTime>) -> Value {
    match (from, to) {
        (Some(from), Some(to)) => json!(to.duration_since(from).map_or(0, |d| d.as_secs())),
        _ => Value::Null,
    }
}

/// `/v1/Account/{auth_id}/MultiPartyCall/uuid_{uuid}/`.
pub fn mpc_uri(auth_id: &str, uuid: &MpcUuid) -> String {
    format!("/v1/Account/{auth_id}/MultiPartyCall/uuid_{uuid}/")
}

/// The MPC object.
pub fn mpc(auth_id: &str, s: &MpcSnapshot) -> Value {
    let uri = mpc_uri(auth_id, &s.uuid);
    json!({
        "mpc_uuid": s.uuid,
        "friendly_name": s.name,
        "status": s.status.as_str(),
        "creation_time": plivo_timestamp(s.created),
        "start_time": time(s.started),
        "end_time": time(s.ended),
        // Counted from the start, like the MPCEnd callback's MPCDuration.
        "duration": match s.ended {
            Some(_) => seconds_between(s.started.or(s.ended), s.ended),
            None => Value::Null,
        },
        "billed_duration": Value::Null,
        "billed_amount": Value::Null,
        "max_participants": s.max_participants,
        "max_duration": s.max_duration,
        "stay_alone": s.stay_alone,
        "recording": match &s.recording {
            None => "not-recording",
            Some((_, true)) => "paused",
            Some((_, false)) => "recording",
        },
        "participants": format!("{uri}Participant/"),
        "termination_cause": s.termination.map(|c| c.name()),
        "termination_cause_code": s.termination.map(|c| c.code()),
        "sub_account": Value::Null,
        "resource_uri": uri,
    })
}

/// The participant object.
pub fn participant(auth_id: &str, mpc_uuid: &MpcUuid, p: &ParticipantSnapshot) -> Value {
    let present = p.is_present();
    // Mute and hold describe a participant in the MPC: null once it left.
    let while_present = |v: bool| if present { json!(v) } else { Value::Null };
    json!({
        "member_id": p.member_id.to_string(),
        "mpc_uuid": mpc_uuid,
        "call_uuid": p.call_uuid,
        "role": p.role.as_str().to_ascii_lowercase(),
        "coach_mode": p.coach_mode,
        "mute": while_present(p.muted),
        "hold": while_present(p.held),
        "join_time": plivo_timestamp(p.joined),
        "exit_time": time(p.exited),
        "exit_cause": p.exit_cause,
        "duration": seconds_between(Some(p.joined), p.exited),
        "billed_duration": Value::Null,
        "billed_amount": Value::Null,
        "start_mpc_on_enter": p.start_mpc_on_enter,
        "end_mpc_on_exit": p.end_mpc_on_exit,
        "member_address": p.member_address,
        "resource_uri": format!("{}Participant/{}/", mpc_uri(auth_id, mpc_uuid), p.member_id),
    })
}
