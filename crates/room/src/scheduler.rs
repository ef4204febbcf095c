//! Mixing threads: one per core, each with its own queue of rooms ordered by their next
//! absolute deadline, taking over another thread's overdue rooms when it has none due.
//!
//! Why not one tokio task per room: tokio's timer has a 1 ms resolution and its workers park
//! in epoll with millisecond timeouts, so a task's 20 ms tick wakes 1–2 ms late at best and
//! later under load — too coarse for a p99 lateness under 2 ms. A plain thread sleeping until
//! the earliest room deadline wakes within tens of microseconds. Rooms get staggered phases
//! so that they spread over the 20 ms period instead of all falling due at once.
//!
//! Why each room has a home thread: its state stays in that core's caches, and when the
//! machine is overloaded every thread keeps its own rooms going instead of all rooms falling
//! late together (what one shared earliest-deadline queue does past saturation). Why threads
//! still help each other: on a busy machine a core is taken now and then for milliseconds (by
//! the kernel delivering packets, by other processes, by the hypervisor), and the rooms of
//! the thread on it would wait however idle the other cores are. So a thread with nothing due
//! ticks another thread's rooms once they are [`TAKE_OVER_AFTER`] late, and puts them back
//! in their home queue. A room is out of its queue while it is ticked, so one thread at a
//! time ticks it and its state needs no lock; a queue's lock is held for a heap operation,
//! never during a tick. Joins and commands reach a room through its message queue and take
//! effect at its next tick.

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::actor::RoomTask;
use crate::lateness::LatenessTally;
use crate::priority::{self, MixerPriority};

/// A room due within this window is ticked when its thread is awake anyway, rather than
/// sleeping for less than the window: fewer wake-ups, at most this much early.
const EARLY: Duration = Duration::from_millis(1);

/// How late another thread's room must be before an idle thread ticks it. Short of the 2 ms
/// lateness the p99 target allows, long enough that a thread busy with a handful of rooms due
/// together is not raced for them.
const TAKE_OVER_AFTER: Duration = Duration::from_micros(500);

/// Phase step between consecutive rooms: 20 ms times the golden ratio's fraction, so that any
/// number of rooms spreads evenly over the tick period.
const PHASE_STEP_NS: u64 = 12_360_680;

/// What the mixing threads tick: a room, or a stand-in in tests.
pub(crate) trait Ticked: Send + 'static {
    /// The absolute deadline of the next tick.
    fn deadline(&self) -> Instant;
    /// Sets the first deadline.
    fn start_at(&mut self, first: Instant);
    /// Runs one tick at `now` (moving the deadline on); false once it has ended.
    fn tick(&mut self, now: Instant, lateness: &mut LatenessTally) -> bool;
}

impl Ticked for RoomTask {
    fn deadline(&self) -> Instant {
        self.next
    }

    fn start_at(&mut self, first: Instant) {
        self.next = first;
    }

    fn tick(&mut self, now: Instant, lateness: &mut LatenessTally) -> bool {
        self.run_tick(now, lateness)
    }
}

/// A room waiting in a queue, ordered so that the earliest deadline is the heap's top.
struct Due<T>(Box<T>);

impl<T: Ticked> PartialEq for Due<T> {
    fn eq(&self, other: &Self) -> bool {
        self.deadline() == other.deadline()
    }
}

impl<T: Ticked> Eq for Due<T> {}

impl<T: Ticked> PartialOrd for Due<T> {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

impl<T: Ticked> Ord for Due<T> {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        other.deadline().cmp(&self.deadline())
    }
}

impl<T: Ticked> Due<T> {
    fn deadline(&self) -> Instant {
        self.0.deadline()
    }
}

/// One thread's rooms.
struct Queue<T> {
    rooms: BinaryHeap<Due<T>>,
    /// Rooms of this queue being ticked right now, by any thread.
    in_hand: usize,
    /// The pool is gone: the thread leaves once its rooms have ended.
    closed: bool,
}

impl<T: Ticked> Queue<T> {
    fn len(&self) -> usize {
        self.rooms.len() + self.in_hand
    }

    fn head(&self) -> Option<Instant> {
        self.rooms.peek().map(Due::deadline)
    }
}

/// A thread's queue and the bell it sleeps on.
struct Home<T> {
    queue: Mutex<Queue<T>>,
    /// Rung when a room is added and at close.
    wake: Condvar,
}

impl<T: Ticked> Home<T> {
    fn new() -> Self {
        Home {
            queue: Mutex::new(Queue {
                rooms: BinaryHeap::new(),
                in_hand: 0,
                closed: false,
            }),
            wake: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue<T>> {
        // Ticks run outside the lock, so it is never poisoned in practice; if it were, the
        // heap is still consistent: carry on rather than take every room down.
        self.queue
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes the earliest room if its deadline is at or before `by`.
    fn take_due(&self, by: Instant) -> Option<Due<T>> {
        let mut queue = self.lock();
        take_if(&mut queue, by)
    }

    /// Like [`Home::take_due`], but gives up at once if the queue is locked.
    fn try_take_due(&self, by: Instant) -> Option<Due<T>> {
        let mut queue = self.queue.try_lock().ok()?;
        take_if(&mut queue, by)
    }

    /// Puts a ticked room back, or counts it gone.
    fn give_back(&self, room: Due<T>, alive: bool) {
        let mut queue = self.lock();
        queue.in_hand -= 1;
        if alive {
            queue.rooms.push(room);
        } else if queue.closed && queue.len() == 0 {
            self.wake.notify_all();
        }
    }
}

fn take_if<T: Ticked>(queue: &mut Queue<T>, by: Instant) -> Option<Due<T>> {
    if queue.head()? > by {
        return None;
    }
    queue.in_hand += 1;
    queue.rooms.pop()
}

/// The mixing threads.
pub(crate) struct MixerPool<T: Ticked = RoomTask> {
    homes: Arc<[Home<T>]>,
    created: AtomicU64,
}

impl<T: Ticked> MixerPool<T> {
    /// Starts `threads` mixing threads (at least one), scheduled at `priority`.
    pub(crate) fn new(threads: usize, priority: MixerPriority) -> Self {
        let threads = threads.max(1);
        let homes: Arc<[Home<T>]> = (0..threads).map(|_| Home::new()).collect();
        for i in 0..threads {
            let homes = homes.clone();
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
                    run(&homes, i)
                })
                .expect("cannot start a mixing thread");
        }
        MixerPool {
            homes,
            created: AtomicU64::new(0),
        }
    }

    /// Hands a new room to the thread with the fewest, with its own phase.
    pub(crate) fn add(&self, mut room: T) {
        let n = self.created.fetch_add(1, Ordering::Relaxed);
        let phase = Duration::from_nanos(n.wrapping_mul(PHASE_STEP_NS) % 20_000_000);
        room.start_at(Instant::now() + Duration::from_millis(20) + phase);
        let home = self
            .homes
            .iter()
            .min_by_key(|home| home.lock().len())
            .expect("at least one thread");
        home.lock().rooms.push(Due(Box::new(room)));
        home.wake.notify_one();
    }
}

impl<T: Ticked> Drop for MixerPool<T> {
    fn drop(&mut self) {
        for home in self.homes.iter() {
            home.lock().closed = true;
            home.wake.notify_all();
        }
    }
}

fn run<T: Ticked>(homes: &[Home<T>], me: usize) {
    let mut lateness = LatenessTally::new();
    let home = &homes[me];
    let others = || homes.iter().enumerate().filter(move |(i, _)| *i != me);
    loop {
        // This thread's own rooms due now or within the window; ticked rooms go back 20 ms
        // later, past the window, so this ends.
        let now = Instant::now();
        let window = now + EARLY;
        while let Some(room) = home.take_due(window) {
            tick_and_give_back(home, room, now, &mut lateness);
            // A thread that stays behind still publishes its lateness.
            lateness.publish_if_due(Instant::now());
        }
        // Then one room another thread is late with, if any, and look at our own again.
        let late = Instant::now().checked_sub(TAKE_OVER_AFTER).unwrap_or(now);
        let taken_over =
            others().find_map(|(_, other)| other.try_take_due(late).map(|room| (other, room)));
        if let Some((other, room)) = taken_over {
            metrics::counter!("huddle_mixer_ticks_taken_over_total").increment(1);
            tick_and_give_back(other, room, now, &mut lateness);
            continue;
        }
        lateness.publish_if_due(now);
        // Sleep until this thread's next room is due, or another's is late enough to take.
        let others_late = others()
            .filter_map(|(_, other)| other.queue.try_lock().ok()?.head())
            .map(|head| head + TAKE_OVER_AFTER)
            .min();
        let queue = home.lock();
        if queue.closed && queue.len() == 0 {
            return;
        }
        let wake_at = match (queue.head(), others_late) {
            (Some(mine), Some(theirs)) => Some(mine.min(theirs)),
            (mine, theirs) => mine.or(theirs),
        };
        match wake_at {
            Some(at) => {
                let wait = at.saturating_duration_since(Instant::now());
                if !wait.is_zero() {
                    drop(home.wake.wait_timeout(queue, wait));
                }
            }
            None => drop(home.wake.wait(queue)),
        }
    }
}

fn tick_and_give_back<T: Ticked>(
    home: &Home<T>,
    mut room: Due<T>,
    now: Instant,
    lateness: &mut LatenessTally,
) {
    let alive = tick_guarded(&mut *room.0, now, lateness);
    home.give_back(room, alive);
}

/// Ticks one room; a panic in it (a bug) costs that room, not the thread and its other rooms.
/// The room's members see their exit signal dropped and continue their call flow.
fn tick_guarded<T: Ticked>(room: &mut T, now: Instant, lateness: &mut LatenessTally) -> bool {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        room.tick(Instant::now().max(now), lateness)
    })) {
        Ok(alive) => alive,
        Err(_) => {
            tracing::error!("a room panicked in its tick and was dropped");
            metrics::counter!("huddle_room_panics_total").increment(1);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One tick as a probe saw it.
    struct Seen {
        room: usize,
        deadline: Instant,
        started: Instant,
        thread: String,
    }

    /// A stand-in room that notes its ticks and can stall its thread once.
    struct Probe {
        room: usize,
        next: Instant,
        ticks: u32,
        last: u32,
        /// At this tick, block the thread for this long.
        stall: Option<(u32, Duration)>,
        seen: Arc<Mutex<Vec<Seen>>>,
    }

    impl Ticked for Probe {
        fn deadline(&self) -> Instant {
            self.next
        }

        fn start_at(&mut self, first: Instant) {
            self.next = first;
        }

        fn tick(&mut self, now: Instant, _lateness: &mut LatenessTally) -> bool {
            self.seen.lock().unwrap().push(Seen {
                room: self.room,
                deadline: self.next,
                started: now,
                thread: std::thread::current().name().unwrap_or("").to_owned(),
            });
            self.ticks += 1;
            if let Some((at, pause)) = self.stall {
                if self.ticks == at {
                    std::thread::sleep(pause);
                }
            }
            self.next += Duration::from_millis(20);
            self.ticks < self.last
        }
    }

    fn probes(
        pool: &MixerPool<Probe>,
        count: usize,
        last: u32,
        stall: impl Fn(usize) -> Option<(u32, Duration)>,
    ) -> Arc<Mutex<Vec<Seen>>> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        for room in 0..count {
            pool.add(Probe {
                room,
                next: Instant::now(),
                ticks: 0,
                last,
                stall: stall(room),
                seen: seen.clone(),
            });
        }
        seen
    }

    fn wait_for_ticks(seen: &Mutex<Vec<Seen>>, total: usize) {
        let give_up = Instant::now() + Duration::from_secs(20);
        while seen.lock().unwrap().len() < total {
            assert!(Instant::now() < give_up, "rooms stopped ticking");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn every_room_is_ticked_once_per_deadline_until_it_ends() {
        let pool = MixerPool::new(2, MixerPriority::Normal);
        let seen = probes(&pool, 12, 10, |_| None);
        wait_for_ticks(&seen, 12 * 10);
        std::thread::sleep(Duration::from_millis(100));
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 120, "an ended room was ticked again");
        for room in 0..12 {
            let deadlines: Vec<Instant> = seen
                .iter()
                .filter(|s| s.room == room)
                .map(|s| s.deadline)
                .collect();
            assert_eq!(deadlines.len(), 10, "room {room}");
            for pair in deadlines.windows(2) {
                assert_eq!(pair[1] - pair[0], Duration::from_millis(20), "room {room}");
            }
        }
    }

    #[test]
    fn a_stalled_thread_delays_only_the_room_in_its_hands() {
        let pool = MixerPool::new(2, MixerPriority::Normal);
        let stall = Duration::from_millis(400);
        let seen = probes(&pool, 10, 40, |room| (room == 0).then_some((5, stall)));
        wait_for_ticks(&seen, 10 * 40);
        let seen = seen.lock().unwrap();
        let home_of = |room: usize| {
            seen.iter()
                .find(|s| s.room == room)
                .map(|s| s.thread.clone())
                .unwrap()
        };
        let stalled_home = home_of(0);
        let mut taken_over = 0;
        for room in 1..10 {
            let home = home_of(room);
            let starts: Vec<&Seen> = seen.iter().filter(|s| s.room == room).collect();
            taken_over += starts.iter().filter(|s| s.thread != home).count();
            let longest_gap = starts
                .windows(2)
                .map(|pair| pair[1].started - pair[0].started)
                .max()
                .unwrap();
            assert!(
                longest_gap < stall / 4,
                "room {room} (home {home}, stalled thread {stalled_home}) waited {longest_gap:?}"
            );
        }
        assert!(
            taken_over > 0,
            "no room was ticked away from its home thread"
        );
        // The stalled room itself is late by the stall, then catches up or resynchronises.
        let stalled_ticks = seen.iter().filter(|s| s.room == 0).count();
        assert_eq!(stalled_ticks, 40);
    }
}
