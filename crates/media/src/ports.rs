//! RTP/RTCP port pairs from the configured range, drawn at random and returned on drop.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Hands out even RTP ports (RTCP = RTP + 1) drawn at random from the free ones, so that
/// nobody who saw one call's port can guess the next call's (design.md, "Media trust"). A
/// freed port cools down behind the others before it can be drawn again, so late packets of an
/// old call do not land in a new one.
#[derive(Debug)]
pub struct PortAllocator {
    pool: Arc<Mutex<Pool>>,
}

#[derive(Debug)]
struct Pool {
    free: Vec<u16>,
    /// Freed most recently last; they rejoin `free` oldest first.
    cooling: VecDeque<u16>,
    cooling_max: usize,
    /// xorshift64* state, seeded from the OS: not a key, only unguessable from outside.
    rng: u64,
}

impl Pool {
    fn draw(&mut self) -> Option<u16> {
        if self.free.is_empty() {
            return self.cooling.pop_front();
        }
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let r = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        let i = (((r >> 32) * self.free.len() as u64) >> 32) as usize;
        Some(self.free.swap_remove(i))
    }

    fn give_back(&mut self, port: u16) {
        self.cooling.push_back(port);
        while self.cooling.len() > self.cooling_max {
            if let Some(oldest) = self.cooling.pop_front() {
                self.free.push(oldest);
            }
        }
    }
}

impl PortAllocator {
    /// A pool over `low..=high` (even ports whose odd partner is inside the range).
    pub fn new(low: u16, high: u16) -> Self {
        let seed = u64::from_le_bytes(
            uuid::Uuid::new_v4().as_bytes()[..8]
                .try_into()
                .unwrap_or([7; 8]),
        );
        Self::with_seed(low, high, seed)
    }

    /// As [`PortAllocator::new`], with the draws fixed by `seed` (tests).
    pub fn with_seed(low: u16, high: u16, seed: u64) -> Self {
        let start = low + (low % 2);
        let free: Vec<u16> = (start..high).step_by(2).collect();
        let cooling_max = (free.len() / 4).min(64);
        PortAllocator {
            pool: Arc::new(Mutex::new(Pool {
                free,
                cooling: VecDeque::new(),
                cooling_max,
                rng: seed | 1,
            })),
        }
    }

    /// Takes a pair, or None when the pool is empty.
    pub fn allocate(&self) -> Option<PortPair> {
        let port = self.pool.lock().ok()?.draw()?;
        Some(PortPair {
            rtp: port,
            pool: self.pool.clone(),
        })
    }

    /// Pairs still free.
    pub fn available(&self) -> usize {
        self.pool
            .lock()
            .map_or(0, |p| p.free.len() + p.cooling.len())
    }
}

/// A reserved RTP/RTCP pair; returns to the pool when dropped.
#[derive(Debug)]
pub struct PortPair {
    rtp: u16,
    pool: Arc<Mutex<Pool>>,
}

impl PortPair {
    /// RTP port (even).
    pub fn rtp(&self) -> u16 {
        self.rtp
    }
    /// RTCP port.
    pub fn rtcp(&self) -> u16 {
        self.rtp + 1
    }
}

impl Drop for PortPair {
    fn drop(&mut self) {
        if let Ok(mut pool) = self.pool.lock() {
            pool.give_back(self.rtp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn pairs_are_even_in_range_and_returned_on_drop() {
        let pool = PortAllocator::new(20001, 20006);
        assert_eq!(pool.available(), 2);
        let a = pool.allocate().unwrap();
        let b = pool.allocate().unwrap();
        let mut got = [a.rtp(), b.rtp()];
        got.sort();
        assert_eq!(got, [20002, 20004]);
        assert_eq!(a.rtcp(), a.rtp() + 1);
        assert!(pool.allocate().is_none());
        let freed = a.rtp();
        drop(a);
        assert_eq!(pool.available(), 1);
        assert_eq!(pool.allocate().unwrap().rtp(), freed);
    }

    #[test]
    fn ports_are_not_handed_out_in_sequence() {
        let pool = PortAllocator::new(20000, 30000);
        let pairs: Vec<PortPair> = (0..200).map(|_| pool.allocate().unwrap()).collect();
        let ports: Vec<u16> = pairs.iter().map(PortPair::rtp).collect();
        assert_eq!(
            ports.iter().collect::<HashSet<_>>().len(),
            200,
            "no port twice"
        );
        assert!(ports
            .iter()
            .all(|p| p % 2 == 0 && (20000..30000).contains(p)));
        // A sequential allocator gives a step of 2 every time; a guesser trying the next 20
        // ports after the one it saw would find the next call almost never here.
        let next_within_20 = ports
            .windows(2)
            .filter(|w| w[1] > w[0] && w[1] - w[0] <= 40)
            .count();
        assert!(
            next_within_20 < 10,
            "{next_within_20} of 199 close successors"
        );
        let spread = ports.iter().max().unwrap() - ports.iter().min().unwrap();
        assert!(spread > 8000, "draws cover the range: {spread}");
    }

    #[test]
    fn a_freed_port_cools_down_before_it_is_drawn_again() {
        let pool = PortAllocator::with_seed(20000, 20400, 42);
        let first = pool.allocate().unwrap();
        let port = first.rtp();
        drop(first);
        let next: Vec<PortPair> = (0..40).map(|_| pool.allocate().unwrap()).collect();
        assert!(next.iter().all(|p| p.rtp() != port), "not reused at once");
    }

    #[test]
    fn the_same_seed_draws_the_same_ports() {
        let draw = |seed| {
            let pool = PortAllocator::with_seed(20000, 30000, seed);
            let pairs: Vec<PortPair> = (0..50).map(|_| pool.allocate().unwrap()).collect();
            pairs.iter().map(PortPair::rtp).collect::<Vec<_>>()
        };
        assert_eq!(draw(9), draw(9));
        assert_ne!(draw(9), draw(10));
    }
}
