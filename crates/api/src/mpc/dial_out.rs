//! Add participant by dialling out (`from` and `to`): the AddParticipantByAPIAction events,
//! the MPC's dial music while the legs ring, and one dialled leg per destination, racing.

use axum::http::StatusCode;
use huddle_room::{Command, Target};
use serde_json::{json, Value};

use super::add_participant::Dial;
use super::{api_action, ApiError, MpcApi};

/// Dials every destination of `dial` to run `document` in MPC `mpc_name`; the response's
/// `calls` entries.
pub async fn dial_out(
    api: &MpcApi,
    dial: Dial,
    document: &str,
    mpc_name: &str,
    request_uuid: &str,
) -> Result<Vec<Value>, ApiError> {
    let events = api_action::ApiActionEvents::new(
        api.rooms.clone(),
        api.calls.webhooks.clone(),
        mpc_name,
        document,
        request_uuid,
        &dial.from,
        &dial.to.join("<"),
    );
    let hook_events = events.clone();
    let music_stop = dial.dial_music.is_some().then(|| {
        (
            api.rooms.clone(),
            mpc_name.to_string(),
            request_uuid.to_string(),
        )
    });
    let race = huddle_callflow::DialRace::with_hook(
        dial.to.len(),
        Box::new(move |settled| {
            if let Some((rooms, name, tag)) = music_stop {
                tokio::spawn(async move {
                    let stop = Command::StopPlay(Target::DialMusic(tag));
                    let _ = rooms.command(&name, stop).await;
                });
            }
            hook_events.completed(settled);
        }),
    );
    events.initiated().await;
    if let Some(music) = dial.dial_music.clone() {
        // The MPC hears it while the legs ring; an MPC this request creates has nobody
        // to hear it yet.
        let longest = |d: &[std::time::Duration]| d.iter().max().copied().unwrap_or_default();
        let limit = longest(&dial.delay_dials) + longest(&dial.ring_timeouts);
        let play = Command::DialMusic {
            tag: request_uuid.to_string(),
            music,
            limit,
        };
        let _ = api.rooms.command(mpc_name, play).await;
    }
    let mut calls = Vec::with_capacity(dial.to.len());
    let legs = dial
        .to
        .iter()
        .zip(dial.calls)
        .zip(dial.ring_timeouts.into_iter().zip(dial.delay_dials));
    for ((destination, call), (ring_timeout, delay)) in legs {
        let request = huddle_callflow::DialRequest {
            call,
            document: document.to_string(),
            ring_timeout,
            delay,
            race: race.clone(),
            request_uuid: request_uuid.to_string(),
            status_callback: dial.status_callback.clone(),
            after_answer: dial.after_answer.clone(),
        };
        let call_uuid = huddle_callflow::dial_participant(&api.calls, request)
            .await
            .map_err(|e| {
                race.abandon();
                // Nothing partial to retry: a 4xx, never a 5xx (SDKs repeat those).
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, &e.to_string())
            })?;
        calls.push(json!({"to": destination, "from": dial.from, "call_uuid": call_uuid}));
    }
    Ok(calls)
}
