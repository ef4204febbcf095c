//! RTP/RTCP port pairs from the configured range, returned on drop.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Hands out even RTP ports (RTCP = RTP + 1) round-robin, so a just-freed port is reused last
/// and late packets of an old call do not land in a new one.
#[derive(Debug)]
pub struct PortAllocator {
    free: Arc<Mutex<VecDeque<u16>>>,
}

impl PortAllocator {
    /// A pool over `low..=high` (even ports whose odd partner is inside the range).
    pub fn new(low: u16, high: u16) -> Self {
        let start = low + (low % 2);
        let free = (start..high).step_by(2).collect();
        PortAllocator {
            free: Arc::new(Mutex::new(free)),
        }
    }

    /// Takes a pair, or None when the pool is empty.
    pub fn allocate(&self) -> Option<PortPair> {
        let port = self.free.lock().ok()?.pop_front()?;
        Some(PortPair {
            rtp: port,
            pool: self.free.clone(),
        })
    }

    /// Pairs still free.
    pub fn available(&self) -> usize {
        self.free.lock().map_or(0, |f| f.len())
    }
}

/// A reserved RTP/RTCP pair; returns to the pool when dropped.
#[derive(Debug)]
pub struct PortPair {
    rtp: u16,
    pool: Arc<Mutex<VecDeque<u16>>>,
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
        if let Ok(mut free) = self.pool.lock() {
            free.push_back(self.rtp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_even_and_returned_on_drop() {
        let pool = PortAllocator::new(20001, 20006);
        assert_eq!(pool.available(), 2);
        let a = pool.allocate().unwrap();
        let b = pool.allocate().unwrap();
        assert_eq!((a.rtp(), a.rtcp(), b.rtp()), (20002, 20003, 20004));
        assert!(pool.allocate().is_none());
        drop(a);
        assert_eq!(pool.allocate().unwrap().rtp(), 20002);
    }
}
