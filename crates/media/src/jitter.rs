//! An adaptive jitter buffer for 20 ms frames with simple loss concealment.

use std::collections::BTreeMap;

/// Frames held between network arrival and the 20 ms playout tick.
///
/// Frames are keyed by extended sequence number. Playout starts once `target` frames are
/// buffered; the target grows by one frame on every underrun (up to the maximum) and shrinks
/// after a long calm stretch, so the delay follows the network's jitter.
#[derive(Debug)]
pub struct JitterBuffer {
    frames: BTreeMap<u64, Vec<u8>>,
    next: Option<u64>,
    target: usize,
    min_frames: usize,
    max_frames: usize,
    playing: bool,
    calm_ticks: u32,
    highest: Option<u64>,
}

/// What the playout tick gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout {
    /// A real frame's payload.
    Frame(Vec<u8>),
    /// The expected frame is missing: conceal.
    Lost,
    /// Still filling up (or idle): play silence.
    Buffering,
}

impl JitterBuffer {
    /// Bounds in milliseconds at 20 ms per frame.
    pub fn new(min_ms: u32, max_ms: u32) -> Self {
        let min_frames = (min_ms / 20).max(1) as usize;
        let max_frames = (max_ms / 20).max(min_frames as u32) as usize;
        JitterBuffer {
            frames: BTreeMap::new(),
            next: None,
            target: min_frames,
            min_frames,
            max_frames,
            playing: false,
            calm_ticks: 0,
            highest: None,
        }
    }

    /// RFC 3550 A.1 style extension of the 16-bit sequence number, relative to the highest seen.
    fn extend(&mut self, seq: u16) -> u64 {
        let Some(highest) = self.highest else {
            let ext = (1 << 16) + u64::from(seq); // start one cycle in so "before" stays positive
            self.highest = Some(ext);
            return ext;
        };
        let mut ext = (highest & !0xFFFF) | u64::from(seq);
        if ext + 0x8000 < highest {
            ext += 0x1_0000;
        } else if ext > highest + 0x8000 {
            ext = ext.saturating_sub(0x1_0000);
        }
        if ext > highest {
            self.highest = Some(ext);
        }
        ext
    }

    /// Stores an arriving frame; duplicates and frames already played are dropped (returns false).
    pub fn push(&mut self, seq: u16, payload: &[u8]) -> bool {
        let ext = self.extend(seq);
        if self.next.is_some_and(|n| ext < n) || self.frames.contains_key(&ext) {
            return false;
        }
        if self.frames.len() >= self.max_frames * 2 {
            // Far too much queued (sender burst or clock skew): drop the oldest.
            self.frames.pop_first();
        }
        self.frames.insert(ext, payload.to_vec());
        true
    }

    /// Takes the frame for this tick.
    pub fn pop(&mut self) -> Playout {
        if !self.playing {
            if self.frames.len() < self.target {
                return Playout::Buffering;
            }
            self.playing = true;
            self.next = self.frames.keys().next().copied();
        }
        let Some(next) = self.next else {
            return Playout::Buffering;
        };
        // Too far behind the newest frame: skip ahead to keep the delay bounded.
        if let Some(&newest) = self.frames.keys().next_back() {
            if newest >= next + self.max_frames as u64 {
                let resume = newest + 1 - self.target as u64;
                self.frames.retain(|k, _| *k >= resume);
                self.next = Some(resume);
            }
        }
        let next = self.next.unwrap_or(next);
        self.next = Some(next + 1);
        match self.frames.remove(&next) {
            Some(frame) => {
                self.calm_ticks += 1;
                if self.calm_ticks > 500 && self.target > self.min_frames {
                    self.target -= 1;
                    self.calm_ticks = 0;
                }
                Playout::Frame(frame)
            }
            None if self.frames.is_empty() => {
                // Underrun: the network is later than our delay; rebuffer with a larger target.
                self.playing = false;
                self.target = (self.target + 1).min(self.max_frames);
                self.calm_ticks = 0;
                Playout::Lost
            }
            None => Playout::Lost,
        }
    }

    /// Frames waiting.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_order_reordered_duplicate_and_lost() {
        let mut jb = JitterBuffer::new(40, 200);
        assert!(jb.push(10, &[1]));
        assert_eq!(jb.pop(), Playout::Buffering);
        assert!(jb.push(12, &[3]));
        assert!(jb.push(11, &[2])); // reordered
        assert!(!jb.push(11, &[2])); // duplicate
        assert_eq!(jb.pop(), Playout::Frame(vec![1]));
        assert_eq!(jb.pop(), Playout::Frame(vec![2]));
        assert!(jb.push(14, &[5]));
        assert_eq!(jb.pop(), Playout::Frame(vec![3]));
        assert_eq!(jb.pop(), Playout::Lost); // 13 never came
        assert_eq!(jb.pop(), Playout::Frame(vec![5]));
        assert!(!jb.push(12, &[3]), "too late");
    }

    #[test]
    fn wraps_around_and_bounds_delay() {
        let mut jb = JitterBuffer::new(20, 100);
        for s in [65534u16, 65535, 0, 1] {
            jb.push(s, &[s as u8]);
        }
        let played: Vec<_> = (0..4).map(|_| jb.pop()).collect();
        assert_eq!(played[0], Playout::Frame(vec![254]));
        assert_eq!(played[3], Playout::Frame(vec![1]));
        for s in 2..40u16 {
            jb.push(s, &[0]);
        }
        jb.pop();
        assert!(jb.len() <= 5, "delay bounded by the maximum: {}", jb.len());
    }

    #[test]
    fn underrun_grows_the_target() {
        let mut jb = JitterBuffer::new(20, 200);
        jb.push(1, &[1]);
        assert_eq!(jb.pop(), Playout::Frame(vec![1]));
        assert_eq!(jb.pop(), Playout::Lost);
        jb.push(2, &[2]);
        assert_eq!(jb.pop(), Playout::Buffering, "needs two frames now");
    }
}
