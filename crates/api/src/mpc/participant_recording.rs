//! Participant-level recording (mpc-api.md §5.14–5.17) under
//! `…/MultiPartyCall/{id}/Participant/{member}/Record/`: start (with `record_track_type`),
//! stop, pause and resume one member's recordings.
//!
//! `record_track_type` `participant` records what the member says (one channel), `all` (the
//! default) the recording around it (two channels: what it says, what it hears), `both`
//! makes both files. On stop, pause and resume it chooses among the member's recordings;
//! SDKs send their default `all` there whatever was started, so a member with no recording
//! of the kind named has all of its recordings stopped (paused, resumed) instead.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use huddle_room::recording::format_of;
use huddle_room::{Command, MpcSnapshot, TrackType};
use huddle_roomport::{MemberId, RecordingId};
use serde_json::json;

use super::request::{bad, Body};
use super::{file_format, no_content, ok, recording_callback, ApiError, ApiResult, MpcApi};

/// The one member a path names (a list or `all` is refused: recordings are per member).
fn member_id(segment: &str) -> Result<MemberId, ApiError> {
    segment.trim().parse().map_err(|_| {
        bad(&format!(
            "the member id must be one participant's number, not {segment:?}"
        ))
    })
}

/// `record_track_type`: `participant`, `all` or `both`, `all` when absent.
fn track_type(body: &Body) -> Result<TrackType, ApiError> {
    match body.string("record_track_type")? {
        None => Ok(TrackType::All),
        Some(text) => TrackType::parse(&text).ok_or_else(|| {
            bad(&format!(
                "record_track_type must be participant, all or both, not {text:?}"
            ))
        }),
    }
}

/// The MPC and the member, which must be in it now.
async fn present(api: &MpcApi, mpc_id: &str, member: MemberId) -> Result<MpcSnapshot, ApiError> {
    let mpc = api.find(mpc_id).await?;
    if !mpc
        .participants
        .iter()
        .any(|p| p.member_id == member && p.is_present())
    {
        return Err(ApiError::not_found(&format!(
            "no participant with member id {member} in multiparty call {:?}",
            mpc.name
        )));
    }
    Ok(mpc)
}

/// `POST …/Participant/{member}/Record/`: 200 with the recording's id and URL (for `both`,
/// the participant track's, and every file in `recordings`, an extension).
pub(super) async fn start(
    State(api): State<MpcApi>,
    headers: HeaderMap,
    Path((account, mpc_id, member)): Path<(String, String, String)>,
    body: Bytes,
) -> ApiResult {
    api.authorize(&headers, &account)?;
    let body = Body::parse(&body)?;
    let member = member_id(&member)?;
    let format = file_format(&body)?;
    let callback = recording_callback(&body)?;
    let track = track_type(&body)?;
    let mpc = present(&api, &mpc_id, member).await?;
    let tracks: Vec<_> = track
        .kinds()
        .iter()
        .map(|kind| (*kind, RecordingId::new(uuid::Uuid::new_v4().to_string())))
        .collect();
    api.command(
        &mpc,
        Command::StartParticipantRecording {
            member,
            tracks: tracks.clone(),
            format,
            callback,
        },
    )
    .await?;
    let url = |id: &RecordingId| api.recordings.url(id, format_of(format));
    let recordings: Vec<_> = tracks
        .iter()
        .map(|(kind, id)| {
            json!({"record_track_type": kind.as_str(), "recording_id": id, "recording_url": url(id)})
        })
        .collect();
    let (_, first) = &tracks[0];
    Ok(ok(
        StatusCode::OK,
        json!({
            "message": format!("MPC: {} record started", mpc.name),
            "recording_id": first,
            "recording_url": url(first),
            "recordings": recordings,
        }),
    ))
}

/// `DELETE …/Participant/{member}/Record/`: 204 once the files are being finalized.
pub(super) async fn stop(
    State(api): State<MpcApi>,
    headers: HeaderMap,
    Path((account, mpc_id, member)): Path<(String, String, String)>,
    body: Bytes,
) -> ApiResult {
    api.authorize(&headers, &account)?;
    let body = Body::parse(&body)?;
    let member = member_id(&member)?;
    let track = track_type(&body)?;
    let mpc = present(&api, &mpc_id, member).await?;
    api.command(&mpc, Command::StopParticipantRecording(member, track))
        .await?;
    Ok(no_content())
}

/// `POST …/Participant/{member}/Record/Pause/` or `…/Resume/`: 204.
pub(super) async fn pause(
    State(api): State<MpcApi>,
    headers: HeaderMap,
    Path((account, mpc_id, member, action)): Path<(String, String, String, String)>,
    body: Bytes,
) -> ApiResult {
    api.authorize(&headers, &account)?;
    let pause = super::pause_action(&action)?;
    let body = Body::parse(&body)?;
    let member = member_id(&member)?;
    let track = track_type(&body)?;
    let mpc = present(&api, &mpc_id, member).await?;
    api.command(
        &mpc,
        Command::PauseParticipantRecording(member, track, pause),
    )
    .await?;
    Ok(no_content())
}
