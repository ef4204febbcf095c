//! Live MPCs by name: the room service the call flow joins through (`huddle_roomport::Rooms`),
//! and the command entry point for the REST API. The map is touched on join, command and room
//! end only — never by a mix tick.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use huddle_prompts::Prompts;
use huddle_roomport::{
    IdSource, JoinRefused, JoinRequest, MemberId, Membership, MpcUuid, Rooms, TickAudio,
};
use tokio::sync::{mpsc, oneshot};

use crate::actor::{ActorMsg, JoinReply, RoomTask};
use crate::events::RoomEvent;
use crate::journal::MpcJournal;
use crate::priority::MixerPriority;
use crate::recording::RecordingPlace;
use crate::scheduler::MixerPool;
use crate::snapshot::MpcSnapshot;
use crate::state::{Command, CommandError, Room};

/// What every room needs from the outside.
pub struct RoomDeps {
    /// For music and sound documents.
    pub http: huddle_events::HttpClient,
    /// Play/Speak audio.
    pub prompts: Prompts,
    /// Where events go (the callback queue). Full: the event is dropped and counted.
    pub events: mpsc::Sender<RoomEvent>,
    /// The runtime for slow work started from mixing threads.
    pub runtime: tokio::runtime::Handle,
    live: Mutex<HashMap<String, RoomHandle>>,
    /// The last ended MPCs, oldest first.
    ended: Mutex<VecDeque<MpcSnapshot>>,
    /// Where recordings go.
    pub recordings: RecordingPlace,
    /// Where rooms journal themselves for a restart after a crash; set once, before rooms.
    journal: OnceLock<Arc<dyn MpcJournal>>,
}

/// Ended MPCs kept for the API at most (the oldest are forgotten first); the store keeps as
/// many.
pub const ENDED_KEPT: usize = 10_000;

impl RoomDeps {
    pub(crate) fn emit(&self, event: RoomEvent) {
        tracing::debug!(event = event.name.as_str(), mpc = %event.mpc_name, member = ?event.member.as_ref().map(|m| m.member_id.get()), "room event");
        if self.events.try_send(event).is_err() {
            metrics::counter!("huddle_room_events_dropped_total").increment(1);
        }
    }

    /// Keeps the final view of a room that closed.
    pub(crate) fn remember(&self, snapshot: MpcSnapshot) {
        let mut ended = self.ended.lock().unwrap_or_else(|p| p.into_inner());
        if ended.len() >= ENDED_KEPT {
            ended.pop_front();
        }
        ended.push_back(snapshot);
    }

    /// The journal, when one is set.
    pub(crate) fn journal(&self) -> Option<&dyn MpcJournal> {
        self.journal.get().map(|j| &**j)
    }

    /// Removes an ended room from the live map (if it is still the one under that name).
    pub(crate) fn forget(&self, name: &str, uuid: &MpcUuid) {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if live.get(name).is_some_and(|h| h.uuid == *uuid) {
            live.remove(name);
        }
    }
}

#[derive(Clone)]
struct RoomHandle {
    uuid: MpcUuid,
    tx: mpsc::UnboundedSender<ActorMsg>,
}

/// Why a command could not be delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryError {
    /// No live MPC with that name or uuid.
    NotFound,
    /// The room refused the command.
    Refused(CommandError),
}

impl std::fmt::Display for RegistryError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RegistryError::NotFound => write!(f, "no live multiparty call with that name"),
            RegistryError::Refused(e) => e.fmt(f),
        }
    }
}

/// The room service.
#[derive(Clone)]
pub struct RoomRegistry {
    deps: Arc<RoomDeps>,
    member_ids: Arc<AtomicU64>,
    /// Where MPC uuids and each room's own source of ids come from.
    ids: Arc<Mutex<Box<dyn IdSource>>>,
    pool: Arc<MixerPool>,
}

impl RoomRegistry {
    /// A registry whose rooms send events to `events`, mixed by one thread per core scheduled
    /// at `priority`, drawing MPC uuids and recording ids from `ids` ([`huddle_roomport::OsIds`]
    /// in production). Must be called inside a tokio runtime (slow room work is spawned onto
    /// it).
    pub fn new(
        http: huddle_events::HttpClient,
        prompts: Prompts,
        events: mpsc::Sender<RoomEvent>,
        priority: MixerPriority,
        recordings: RecordingPlace,
        ids: Box<dyn IdSource>,
    ) -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        RoomRegistry {
            deps: Arc::new(RoomDeps {
                http,
                prompts,
                events,
                runtime: tokio::runtime::Handle::current(),
                live: Mutex::new(HashMap::new()),
                ended: Mutex::new(VecDeque::new()),
                recordings,
                journal: OnceLock::new(),
            }),
            pool: Arc::new(MixerPool::new(threads, priority)),
            // Member ids are decimal strings in the API; start well above 0 so they never
            // look like counts.
            member_ids: Arc::new(AtomicU64::new(10_000)),
            ids: Arc::new(Mutex::new(ids)),
        }
    }

    /// Journals every room of this registry to `journal` from now on (the first journal set
    /// stays; set it before the first join).
    pub fn set_journal(&self, journal: Arc<dyn MpcJournal>) {
        if self.deps.journal.set(journal).is_err() {
            tracing::warn!("an MPC journal is already set");
        }
    }

    /// Adds MPCs that ended elsewhere (in an earlier run) to the ended ones the API shows,
    /// oldest first.
    pub fn restore_ended(&self, snapshots: impl IntoIterator<Item = MpcSnapshot>) {
        for snapshot in snapshots {
            self.deps.remember(snapshot);
        }
    }

    /// Names of the live MPCs.
    pub fn live_names(&self) -> Vec<String> {
        let live = self.deps.live.lock().unwrap_or_else(|p| p.into_inner());
        live.keys().cloned().collect()
    }

    /// The uuid of the live MPC with this name.
    pub fn uuid_of(&self, name: &str) -> Option<MpcUuid> {
        let live = self.deps.live.lock().unwrap_or_else(|p| p.into_inner());
        live.get(name).map(|h| h.uuid.clone())
    }

    /// Sends an operator command to a live MPC (by friendly name or by uuid); it takes effect
    /// before the room's next tick.
    pub async fn command(&self, name_or_uuid: &str, command: Command) -> Result<(), RegistryError> {
        let handle = self.find(name_or_uuid).ok_or(RegistryError::NotFound)?;
        let (reply, rx) = oneshot::channel();
        handle
            .tx
            .send(ActorMsg::Command { command, reply })
            .map_err(|_| RegistryError::NotFound)?;
        rx.await
            .map_err(|_| RegistryError::NotFound)?
            .map_err(RegistryError::Refused)
    }

    /// Ends every live MPC because the server is shutting down (5030 "Server Shutdown"),
    /// hanging up its members' calls, and returns once each room has taken the command. Run
    /// before the calls themselves are hung up, so that the rooms report the shutdown rather
    /// than what the first hang-up would make of it (1010 "Stay Alone Not Permitted").
    pub async fn shutdown_all(&self) {
        let handles: Vec<RoomHandle> = {
            let live = self.deps.live.lock().unwrap_or_else(|p| p.into_inner());
            live.values().cloned().collect()
        };
        for handle in handles {
            let (reply, rx) = oneshot::channel();
            let command = Command::Shutdown;
            if handle.tx.send(ActorMsg::Command { command, reply }).is_ok() {
                // A room that closes meanwhile drops the reply: nothing more to do for it.
                let _ = rx.await;
            }
        }
    }

    /// A snapshot of a live MPC (by friendly name or uuid), or of an ended one (by uuid).
    pub async fn snapshot(&self, name_or_uuid: &str) -> Option<MpcSnapshot> {
        if let Some(handle) = self.find(name_or_uuid) {
            if let Some(snapshot) = ask_snapshot(&handle).await {
                return Some(snapshot);
            }
        }
        self.ended_snapshot(name_or_uuid)
    }

    fn ended_snapshot(&self, uuid: &str) -> Option<MpcSnapshot> {
        let ended = self.deps.ended.lock().unwrap_or_else(|p| p.into_inner());
        ended.iter().rev().find(|s| s.uuid == uuid).cloned()
    }

    /// Every MPC known: the live ones and the last ended ones, newest first.
    pub async fn snapshots(&self) -> Vec<MpcSnapshot> {
        let handles: Vec<RoomHandle> = {
            let live = self.deps.live.lock().unwrap_or_else(|p| p.into_inner());
            live.values().cloned().collect()
        };
        let mut all = Vec::with_capacity(handles.len());
        for handle in &handles {
            if let Some(snapshot) = ask_snapshot(handle).await {
                all.push(snapshot);
            }
        }
        {
            let ended = self.deps.ended.lock().unwrap_or_else(|p| p.into_inner());
            // A room that closed between the two looks is listed once.
            for snapshot in ended.iter() {
                if !all.iter().any(|s| s.uuid == snapshot.uuid) {
                    all.push(snapshot.clone());
                }
            }
        }
        all.sort_by_key(|s| std::cmp::Reverse(s.created));
        all
    }

    fn find(&self, name_or_uuid: &str) -> Option<RoomHandle> {
        let live = self.deps.live.lock().unwrap_or_else(|p| p.into_inner());
        live.get(name_or_uuid)
            .or_else(|| live.values().find(|h| h.uuid == name_or_uuid))
            .cloned()
    }

    fn live_or_new(&self, name: &str, rate: u32) -> RoomHandle {
        let mut live = self.deps.live.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(h) = live.get(name).filter(|h| !h.tx.is_closed()) {
            return h.clone();
        }
        let (uuid, room_ids) = {
            let mut ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
            (ids.mpc_uuid(), ids.fork())
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let handle = RoomHandle {
            uuid: uuid.clone(),
            tx: tx.clone(),
        };
        live.insert(name.to_string(), handle.clone());
        tracing::info!(mpc = %name, mpc_uuid = %uuid, "MPC created");
        let now = std::time::Instant::now();
        let state = Room::new(uuid, name.to_string(), now, room_ids);
        self.pool
            .add(RoomTask::new(state, rate, self.deps.clone(), rx, tx, now));
        handle
    }

    /// One attempt; Err gives the audio back when the MPC ended before the join got in.
    async fn join_once(
        &self,
        request: &JoinRequest,
        audio: Box<dyn TickAudio>,
    ) -> Result<Result<Membership, JoinRefused>, Box<dyn TickAudio>> {
        // A new MPC starts at its creator's rate (8, 16 or 48 kHz); a wider joiner switches it.
        let handle = self.live_or_new(&request.mpc.name, audio.rate());
        let member_id = MemberId(self.member_ids.fetch_add(1, Ordering::Relaxed));
        let (reply, rx) = oneshot::channel();
        let sent = handle.tx.send(ActorMsg::Join {
            request: Box::new(request.clone()),
            audio,
            member_id,
            reply,
        });
        let outcome = match sent {
            Ok(()) => rx.await.ok(),
            Err(tokio::sync::mpsc::error::SendError(msg)) => match msg {
                ActorMsg::Join { audio, .. } => Some(JoinReply::Gone(audio)),
                _ => None,
            },
        };
        match outcome {
            Some(JoinReply::Joined(m)) => Ok(Ok(m)),
            Some(JoinReply::Refused(r)) => Ok(Err(r)),
            Some(JoinReply::Gone(audio)) => {
                self.deps.forget(&request.mpc.name, &handle.uuid);
                Err(audio)
            }
            // The room dropped the join (and with it the audio) without an answer.
            None => Ok(Err(JoinRefused {
                reason: "the multiparty call failed while joining".into(),
            })),
        }
    }
}

async fn ask_snapshot(handle: &RoomHandle) -> Option<MpcSnapshot> {
    let (reply, rx) = oneshot::channel();
    handle.tx.send(ActorMsg::Snapshot { reply }).ok()?;
    rx.await.ok()
}

impl Rooms for RoomRegistry {
    fn join(
        &self,
        request: JoinRequest,
        audio: Box<dyn TickAudio>,
    ) -> Pin<Box<dyn Future<Output = Result<Membership, JoinRefused>> + Send + '_>> {
        Box::pin(async move {
            // An MPC that ended between lookup and join is replaced by a new one.
            let mut audio = audio;
            for _ in 0..3 {
                match self.join_once(&request, audio).await {
                    Ok(result) => return result,
                    Err(back) => audio = back,
                }
            }
            Err(JoinRefused {
                reason: "the multiparty call kept ending while joining".into(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use huddle_roomport::SeededIds;

    fn registry(seed: u64) -> RoomRegistry {
        let (events, _) = mpsc::channel(16);
        RoomRegistry::new(
            huddle_events::HttpClient::new(reqwest::Client::new(), None),
            Prompts::new(reqwest::Client::new(), Default::default()),
            events,
            MixerPriority::Normal,
            RecordingPlace {
                dir: std::env::temp_dir(),
                url_base: "http://127.0.0.1/".into(),
            },
            Box::new(SeededIds::new(seed)),
        )
    }

    #[tokio::test]
    async fn a_seeded_registry_draws_the_same_mpc_uuids_on_every_run() {
        let draw = |seed| {
            let rooms = registry(seed);
            rooms.live_or_new("a", 8000);
            rooms.live_or_new("b", 8000);
            (rooms.uuid_of("a").unwrap(), rooms.uuid_of("b").unwrap())
        };
        let (a, b) = draw(3);
        assert_ne!(a, b);
        assert_eq!(draw(3), (a.clone(), b), "one seed, one sequence");
        assert_ne!(draw(4).0, a, "another seed, other uuids");
    }
}
