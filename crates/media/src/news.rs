//! Rare news for objects that a hot loop looks at on every tick: a leg's control queue (a
//! re-INVITE, a digit to send), a room's members' queues (a digit, a hang-up).
//!
//! Each kind of news has one process-wide [`Epoch`], a counter every core keeps in its cache.
//! A sender queues its message, raises its receiver's flag ([`NewsBell::ring`]) and bumps the
//! epoch; the receiver's tick ([`NewsWatch::take`]) compares the epoch with the value it saw
//! last and reads its own flag, which lives elsewhere in memory and would otherwise cost a
//! cache miss per object per tick, only when the epoch moved. With hundreds of objects per
//! thread and news a few times a minute, a tick almost always stops at the shared counter.
//!
//! ```
//! use huddle_media::news::{self, Epoch};
//!
//! static CONTROL: Epoch = Epoch::new();
//!
//! let (bell, mut watch) = news::channel(&CONTROL);
//! assert!(!watch.take());
//! bell.ring();
//! assert!(watch.take(), "the ring is seen once");
//! assert!(!watch.take());
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// A process-wide news counter, bumped by every ring of every bell on it. Declare one `static`
/// per kind of news.
#[derive(Debug)]
pub struct Epoch(AtomicU64);

impl Epoch {
    /// A counter at zero.
    pub const fn new() -> Self {
        Epoch(AtomicU64::new(0))
    }

    /// The counter's value now.
    pub fn current(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    fn bump(&self) {
        self.0.fetch_add(1, Ordering::Release);
    }
}

impl Default for Epoch {
    fn default() -> Self {
        Epoch::new()
    }
}

/// The senders' side: raises one receiver's flag and announces it on the epoch. Cloned for
/// every sender of the same receiver.
#[derive(Debug, Clone)]
pub struct NewsBell {
    flag: Arc<AtomicBool>,
    epoch: &'static Epoch,
}

impl NewsBell {
    /// Tells the receiver it has news. Queue the message first: whoever sees the new epoch
    /// sees the flag, and whoever sees the flag finds what was queued before the ring.
    pub fn ring(&self) {
        self.flag.store(true, Ordering::Release);
        self.epoch.bump();
    }
}

/// The receiver's side, looked at by its tick.
#[derive(Debug)]
pub struct NewsWatch {
    flag: Arc<AtomicBool>,
    epoch: &'static Epoch,
    seen: u64,
}

impl NewsWatch {
    /// A bell for one more sender.
    pub fn bell(&self) -> NewsBell {
        NewsBell {
            flag: self.flag.clone(),
            epoch: self.epoch,
        }
    }

    /// True once after one or more rings: the receiver then drains its queues. Costs one load
    /// of the shared epoch while nobody anywhere rang.
    pub fn take(&mut self) -> bool {
        let epoch = self.epoch.current();
        if epoch == self.seen {
            return false;
        }
        self.seen = epoch;
        self.flag.swap(false, Ordering::Acquire)
    }
}

/// A receiver's flag on `epoch`: a bell for its senders and the watch for its tick.
pub fn channel(epoch: &'static Epoch) -> (NewsBell, NewsWatch) {
    let flag = Arc::new(AtomicBool::new(false));
    (
        NewsBell {
            flag: flag.clone(),
            epoch,
        },
        NewsWatch {
            flag,
            epoch,
            seen: 0,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ring_is_seen_once_by_its_receiver_only() {
        static NEWS: Epoch = Epoch::new();
        let (a_bell, mut a) = channel(&NEWS);
        let (_b_bell, mut b) = channel(&NEWS);
        assert!(!a.take() && !b.take());
        a_bell.ring();
        a_bell.clone().ring();
        assert!(
            !b.take(),
            "another receiver's ring moves the epoch, not this flag"
        );
        assert!(a.take());
        assert!(!a.take(), "two rings before a look are one piece of news");
        a.bell().ring();
        assert!(
            a.take() && !b.take(),
            "a bell made from the watch rings the same flag"
        );
    }

    #[test]
    fn a_ring_between_looks_is_never_lost() {
        static NEWS: Epoch = Epoch::new();
        let (bell, mut watch) = channel(&NEWS);
        let before = NEWS.current();
        bell.ring();
        assert_eq!(NEWS.current(), before + 1);
        assert!(watch.take());
        bell.ring();
        assert!(watch.take());
    }
}
