//! Start-up after a crash: every MPC the last run left live is ended as its room would have
//! ended it, with the cause `Server Restarted` (5100), and every recording it left unfinished
//! (an MPC's, or a `<Record>` file) is repaired on disk and reported with the duration of the
//! data it holds.

use std::time::SystemTime;

use huddle_room::recording::{finished_event, RecordingPlace};
use huddle_room::snapshot::MpcSnapshot;
use huddle_room::{LiveRecording, TerminationCause};
use huddle_store::mpcs::Found;
use huddle_store::Store;

use huddle_callflow::CallRecording;
use huddle_events::{Webhook, Webhooks};

use crate::journal::{
    call_recording_of, last_seen, live_of, mpc_record, recording_of, snapshot_of,
};
use crate::status_callbacks::Numbering;

/// Ends what `found` (read from the store at start-up) says the last run left live, through
/// `numbering` (the normal, durable callback path, numbers continued); `<Record>` files'
/// callbackUrl reports go through `webhooks`. Returns the ended MPCs for the API: the history
/// the store kept, oldest first, then the ones ended now.
pub(crate) async fn recover(
    found: Found,
    numbering: &mut Numbering,
    webhooks: &Webhooks,
    store: &Store,
    place: &RecordingPlace,
) -> Vec<MpcSnapshot> {
    let Found {
        live,
        recordings,
        history,
        alive_at,
        ..
    } = found;
    let mut ended: Vec<MpcSnapshot> = history.iter().filter_map(snapshot_of).collect();

    // The files' last writes tell when the process died, to the second.
    let mut unfinished = Vec::new();
    for record in &recordings {
        if record.call.is_some() {
            match call_recording_of(record) {
                Some(recording) => finish_call_recording(recording, webhooks, store).await,
                None => store.recording_finished(&record.id),
            }
            continue;
        }
        let Some(recording) = recording_of(record) else {
            continue;
        };
        let path = recording.path.clone();
        let modified = tokio::task::spawn_blocking(move || {
            std::fs::metadata(path).and_then(|m| m.modified()).ok()
        })
        .await
        .ok()
        .flatten();
        unfinished.push((recording, modified));
    }

    for record in &live {
        let Some(mpc) = live_of(record) else {
            continue;
        };
        if let Some(closed) = ended.iter().find(|s| s.uuid == mpc.snapshot.uuid) {
            // Its room closed, but the process died before its end was queued.
            tracing::info!(mpc_uuid = %record.uuid, "sending the end of an MPC again: the last run stopped as it ended");
            for event in mpc.replay_end(closed) {
                numbering.queue(event);
            }
            continue;
        }
        let at = unfinished
            .iter()
            .filter(|(r, _)| r.mpc_uuid == mpc.snapshot.uuid)
            .filter_map(|(_, modified)| *modified)
            .chain(alive_at)
            .chain([last_seen(&mpc.snapshot)])
            .max()
            .unwrap_or_else(SystemTime::now);
        tracing::warn!(
            mpc = %mpc.snapshot.name,
            mpc_uuid = %mpc.snapshot.uuid,
            "the last run stopped with this MPC live: ending it"
        );
        metrics::counter!("huddle_mpcs_recovered_total").increment(1);
        let (events, snapshot) = mpc.end(at, TerminationCause::ServerRestarted);
        for event in events {
            numbering.queue(event);
        }
        // After its end is queued: a crash before this line repeats the end at the next
        // start, one after it finds the MPC in the history only.
        store.mpc_ended(
            mpc_record(&snapshot, None, &[]),
            huddle_room::registry::ENDED_KEPT,
        );
        ended.push(snapshot);
    }

    for (recording, modified) in unfinished {
        let event = finish_recording(place, recording, modified).await;
        numbering.queue(event);
    }
    ended
}

/// Repairs a `<Record>` file the last run did not finish and sends its callbackUrl the
/// report the call would have sent (`CallStatus=completed`: the call died with the process),
/// then strikes it off the journal: after the report is queued, so a crash in between repeats
/// the report rather than losing it.
async fn finish_call_recording(recording: CallRecording, webhooks: &Webhooks, store: &Store) {
    let path = recording.path.clone();
    let modified = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || std::fs::metadata(path).and_then(|m| m.modified()).ok())
            .await
            .ok()
            .flatten()
    };
    let result = repair(path, recording.format).await;
    match &result {
        Ok(finished) => {
            tracing::warn!(
                recording = %recording.id,
                call_uuid = %recording.call.call_uuid,
                seconds = finished.seconds(),
                "<Record> file left unfinished by the last run: file repaired"
            );
            if let Some(callback) = &recording.callback {
                let ended = modified.unwrap_or(recording.started).max(recording.started);
                webhooks.send(
                    &recording.call.call_uuid,
                    Webhook {
                        url: callback.url.clone(),
                        method: callback.method,
                        params: recording.callback_params("completed", finished, ended),
                    },
                );
            }
        }
        Err(error) => tracing::error!(
            recording = %recording.id,
            %error,
            "<Record> file left unfinished by the last run cannot be repaired"
        ),
    }
    store.recording_finished(&recording.id);
}

/// Repairs a file left unfinished (off the runtime's threads) and counts the outcome.
async fn repair(
    path: std::path::PathBuf,
    format: huddle_record::Format,
) -> Result<huddle_record::Finished, huddle_record::RecordError> {
    let shown = path.clone();
    let result = tokio::task::spawn_blocking(move || huddle_record::recover(&path, format))
        .await
        .unwrap_or_else(|e| {
            Err(huddle_record::RecordError::Io {
                path: shown,
                detail: e.to_string(),
            })
        });
    let outcome = if result.is_ok() {
        "completed"
    } else {
        "failed"
    };
    metrics::counter!("huddle_recordings_recovered_total", "result" => outcome).increment(1);
    result
}

/// Repairs one recording's file and builds its report.
async fn finish_recording(
    place: &RecordingPlace,
    recording: LiveRecording,
    modified: Option<SystemTime>,
) -> huddle_room::RoomEvent {
    let result = repair(recording.path.clone(), recording.format).await;
    if let Ok(finished) = &result {
        tracing::warn!(
            recording = %recording.id,
            mpc_uuid = %recording.mpc_uuid,
            seconds = finished.seconds(),
            "recording left unfinished by the last run: file repaired"
        );
    }
    let ended = modified.unwrap_or(recording.started).max(recording.started);
    finished_event(place, recording, ended, result)
}
