//! Room events become status callbacks: each MPC's events go, in order, to the
//! `statusCallbackUrl` its first joiner set, for the groups its `statusCallbackEvents` select.

use std::collections::{HashMap, VecDeque};
use std::time::SystemTime;

use huddle_events::{Webhook, Webhooks};
use huddle_room::{EventName, RoomEvent};
use huddle_roomport::MpcUuid;
use huddle_store::Store;
use tokio::sync::mpsc;

/// Ended MPCs whose sequence numbers are kept.
const ENDED_KEPT: usize = 10_000;

/// Numbers each MPC's callbacks and queues them, keeping the MPC journal in step: the last
/// number given, and the end of an MPC or a recording once its report is queued (durably,
/// before the journal forgets it, since both go through the store's one writer in order).
pub(crate) struct Numbering {
    webhooks: Webhooks,
    store: Store,
    /// Per MPC, the last SequenceNumber given. An ended MPC's count is kept a while longer:
    /// its recording's Completed callback comes after MPCEnd, once the file is written.
    sequences: HashMap<MpcUuid, u64>,
    ended_mpcs: VecDeque<MpcUuid>,
}

impl Numbering {
    /// Numbering that continues from `sequences`, the numbers the last run reached.
    pub(crate) fn new(
        webhooks: Webhooks,
        store: Store,
        sequences: impl IntoIterator<Item = (MpcUuid, u64)>,
    ) -> Self {
        Numbering {
            webhooks,
            store,
            sequences: sequences.into_iter().collect(),
            ended_mpcs: VecDeque::new(),
        }
    }

    /// Logs `event` and queues its callback, if it has one.
    pub(crate) fn queue(&mut self, event: RoomEvent) {
        tracing::info!(
            event = event.name.as_str(),
            mpc = %event.mpc_name,
            mpc_uuid = %event.mpc_uuid,
            member = event.member.as_ref().map(|m| m.member_id.get()),
            params = ?event.params,
            "MPC event"
        );
        if let Some(target) = &event.callback {
            let sequence = self.sequences.entry(event.mpc_uuid.clone()).or_default();
            *sequence += 1;
            let timestamp = huddle_room::clock::plivo_timestamp(SystemTime::now());
            self.webhooks.send(
                event.mpc_uuid.as_str(),
                Webhook {
                    url: target.url.clone(),
                    method: target.method,
                    params: event.callback_params(&timestamp, *sequence),
                },
            );
            self.store.mpc_sequence(event.mpc_uuid.as_str(), *sequence);
        }
        match event.name {
            EventName::MpcEnd => {
                self.store.mpc_live_ended(event.mpc_uuid.as_str());
                self.ended_mpcs.push_back(event.mpc_uuid);
                if self.ended_mpcs.len() > ENDED_KEPT {
                    if let Some(oldest) = self.ended_mpcs.pop_front() {
                        self.sequences.remove(&oldest);
                        self.store.mpc_sequence_forgotten(oldest.as_str());
                    }
                }
            }
            name if name.is_recording_end() => {
                if let Some((_, id)) = event.params.iter().find(|(k, _)| *k == "RecordingUUID") {
                    self.store.recording_finished(id);
                }
            }
            _ => {}
        }
    }
}

/// Hands every room event to `numbering` until the rooms' event channel closes.
pub(crate) async fn deliver(mut events: mpsc::Receiver<RoomEvent>, mut numbering: Numbering) {
    while let Some(event) = events.recv().await {
        numbering.queue(event);
    }
}
