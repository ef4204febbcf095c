//! Mixing threads: one per core, each ticking its share of the rooms on absolute deadlines.
//!
//! Why not one tokio task per room: tokio's timer has a 1 ms resolution and its workers park
//! in epoll with millisecond timeouts, so a task's 20 ms tick wakes 1–2 ms late at best and
//! later under load — too coarse for a p99 lateness under 2 ms. A plain thread sleeping until
//! the earliest room deadline wakes within tens of microseconds, and ticks every room due
//! within a short batch window in one wake-up, so thousands of rooms cost a few wake-ups per
//! millisecond instead of one per room. Rooms get staggered phases so that they spread over
//! the 20 ms period instead of all falling due at once. A room never moves between threads,
//! so its state needs no lock; joins and commands reach it through its message queue and
//! take effect at its next tick.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::actor::RoomTask;
use crate::lateness::LatenessTally;
use crate::priority::{self, MixerPriority};

/// Rooms due within this window of the earliest deadline are ticked in the same wake-up.
const BATCH: Duration = Duration::from_millis(1);

/// Phase step between consecutive rooms: 20 ms times the golden ratio's fraction, so that any
/// number of rooms spreads evenly over the tick period.
const PHASE_STEP_NS: u64 = 12_360_680;

struct Worker {
    tx: mpsc::Sender<RoomTask>,
    rooms: Arc<AtomicUsize>,
}

/// The mixing threads.
pub(crate) struct MixerPool {
    workers: Vec<Worker>,
    created: AtomicU64,
}

impl MixerPool {
    /// Starts `threads` mixing threads (at least one), scheduled at `priority`.
    pub(crate) fn new(threads: usize, priority: MixerPriority) -> Self {
        let workers = (0..threads.max(1))
            .map(|i| {
                let (tx, rx) = mpsc::channel();
                let rooms = Arc::new(AtomicUsize::new(0));
                let count = rooms.clone();
                std::thread::Builder::new()
                    .name(format!("huddle-mixer-{i}"))
                    .spawn(move || {
                        let (got, error) = priority::apply(priority);
                        match error {
                            Some(e) if i == 0 => tracing::warn!(
                                asked = ?priority, running_at = ?got, error = %e,
                                "mixing threads cannot raise their priority (needs root or CAP_SYS_NICE): ticks may run late on a busy machine"
                            ),
                            None if i == 0 => tracing::info!(priority = ?got, "mixing threads started"),
                            _ => {}
                        }
                        run(rx, count)
                    })
                    .expect("cannot start a mixing thread");
                Worker { tx, rooms }
            })
            .collect();
        MixerPool {
            workers,
            created: AtomicU64::new(0),
        }
    }

    /// Hands a new room to the least loaded thread, with its own phase.
    pub(crate) fn add(&self, mut room: RoomTask) {
        let n = self.created.fetch_add(1, Ordering::Relaxed);
        let phase = Duration::from_nanos(n.wrapping_mul(PHASE_STEP_NS) % 20_000_000);
        room.next = Instant::now() + Duration::from_millis(20) + phase;
        let worker = self
            .workers
            .iter()
            .min_by_key(|w| w.rooms.load(Ordering::Relaxed))
            .expect("at least one worker");
        worker.rooms.fetch_add(1, Ordering::Relaxed);
        if worker.tx.send(room).is_err() {
            worker.rooms.fetch_sub(1, Ordering::Relaxed);
            tracing::error!("a mixing thread is gone: room dropped");
        }
    }
}

fn run(incoming: mpsc::Receiver<RoomTask>, count: Arc<AtomicUsize>) {
    let mut rooms: Vec<RoomTask> = Vec::new();
    let mut lateness = LatenessTally::new();
    loop {
        // Sleep until the earliest deadline, or until a new room arrives.
        let received = match rooms.iter().map(|r| r.next).min() {
            None => incoming.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(earliest) => {
                let wait = earliest.saturating_duration_since(Instant::now());
                if wait.is_zero() {
                    Err(RecvTimeoutError::Timeout)
                } else {
                    incoming.recv_timeout(wait)
                }
            }
        };
        match received {
            Ok(room) => {
                rooms.push(room);
                continue;
            }
            Err(RecvTimeoutError::Disconnected) if rooms.is_empty() => return,
            Err(_) => {}
        }
        let now = Instant::now();
        let horizon = now + BATCH;
        let mut i = 0;
        while i < rooms.len() {
            if rooms[i].next <= horizon && !tick_guarded(&mut rooms[i], now, &mut lateness) {
                rooms.swap_remove(i);
                count.fetch_sub(1, Ordering::Relaxed);
                continue;
            }
            i += 1;
        }
        lateness.publish_if_due(now);
    }
}

/// Ticks one room; a panic in it (a bug) costs that room, not the thread and its other rooms.
/// The room's members see their exit signal dropped and continue their call flow.
fn tick_guarded(room: &mut RoomTask, now: Instant, lateness: &mut LatenessTally) -> bool {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        room.run_tick(Instant::now().max(now), lateness)
    })) {
        Ok(alive) => alive,
        Err(_) => {
            tracing::error!("a room panicked in its tick and was dropped");
            metrics::counter!("huddle_room_panics_total").increment(1);
            false
        }
    }
}
