//! Room events become status callbacks: each MPC's events go, in order, to the
//! `statusCallbackUrl` its first joiner set, for the groups its `statusCallbackEvents` select.

use std::collections::{HashMap, VecDeque};
use std::time::SystemTime;

use huddle_events::{Webhook, Webhooks};
use huddle_room::{EventName, RoomEvent};
use huddle_roomport::MpcUuid;
use tokio::sync::mpsc;

/// Ended MPCs whose sequence numbers are kept.
const ENDED_KEPT: usize = 10_000;

/// Logs every room event and hands the selected ones to `webhooks`, keyed by MPC so that one
/// MPC's callbacks keep their order. Runs until the rooms' event channel closes.
pub async fn deliver(mut events: mpsc::Receiver<RoomEvent>, webhooks: Webhooks) {
    // Per MPC, the last SequenceNumber given. An ended MPC's count is kept a while longer: its
    // recording's Completed callback comes after MPCEnd, once the file is written.
    let mut sequences: HashMap<MpcUuid, u64> = HashMap::new();
    let mut ended_mpcs: VecDeque<MpcUuid> = VecDeque::new();
    while let Some(event) = events.recv().await {
        tracing::info!(
            event = event.name.as_str(),
            mpc = %event.mpc_name,
            mpc_uuid = %event.mpc_uuid,
            member = event.member.as_ref().map(|m| m.member_id.get()),
            params = ?event.params,
            "MPC event"
        );
        let ended = event.name == EventName::MpcEnd;
        if let Some(target) = &event.callback {
            let sequence = sequences.entry(event.mpc_uuid.clone()).or_default();
            *sequence += 1;
            let timestamp = huddle_room::clock::plivo_timestamp(SystemTime::now());
            webhooks.send(
                event.mpc_uuid.as_str(),
                Webhook {
                    url: target.url.clone(),
                    method: target.method,
                    params: event.callback_params(&timestamp, *sequence),
                },
            );
        }
        if ended {
            ended_mpcs.push_back(event.mpc_uuid.clone());
            if ended_mpcs.len() > ENDED_KEPT {
                if let Some(oldest) = ended_mpcs.pop_front() {
                    sequences.remove(&oldest);
                }
            }
        }
    }
}
