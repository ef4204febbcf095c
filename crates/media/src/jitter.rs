//! An adaptive jitter buffer for 20 ms frames with simple loss concealment.
//!
//! Frames live in a small ring of reusable slots rather than a map of owned buffers: a leg
//! pushes and pops 50 frames a second, and after the first few frames this touches no heap.

/// Frames held between network arrival and the 20 ms playout tick.
///
/// Frames are keyed by extended sequence number. Playout starts once `target` frames are
/// buffered; the target grows by one frame on every underrun (up to the maximum) and shrinks
/// after a long calm stretch, so the delay follows the network's jitter.
#[derive(Debug)]
pub struct JitterBuffer {
    slots: Vec<Slot>,
    stored: usize,
    next: Option<u64>,
    target: usize,
    min_frames: usize,
    max_frames: usize,
    playing: bool,
    calm_ticks: u32,
    highest: Option<u64>,
    discarded: u64,
}

/// One ring position: the frame's extended sequence number when occupied, and its payload
/// (the buffer is kept between uses so that it stops allocating once grown).
#[derive(Debug, Default)]
struct Slot {
    seq: Option<u64>,
    payload: Vec<u8>,
}

/// What the playout tick gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout<'a> {
    /// A real frame's payload.
    Frame(&'a [u8]),
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
            // A power of two, so that a frame's slot is a mask rather than a division.
            slots: (0..(max_frames * 2).next_power_of_two())
                .map(|_| Slot::default())
                .collect(),
            stored: 0,
            next: None,
            target: min_frames,
            min_frames,
            max_frames,
            playing: false,
            calm_ticks: 0,
            highest: None,
            discarded: 0,
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

    fn slot_of(&self, ext: u64) -> usize {
        (ext & (self.slots.len() as u64 - 1)) as usize
    }

    /// Stores an arriving frame; duplicates and frames already played are dropped (returns false).
    pub fn push(&mut self, seq: u16, payload: &[u8]) -> bool {
        let ext = self.extend(seq);
        if self.next.is_some_and(|n| ext < n) {
            return false;
        }
        let i = self.slot_of(ext);
        match self.slots[i].seq {
            Some(held) if held >= ext => return false, // a duplicate, or older than its slot's frame
            // Far too much queued (sender burst or clock skew): the oldest frame gives way.
            Some(_) => {
                self.stored -= 1;
                self.discarded += 1;
            }
            None => {}
        }
        let slot = &mut self.slots[i];
        slot.seq = Some(ext);
        slot.payload.clear();
        slot.payload.extend_from_slice(payload);
        self.stored += 1;
        true
    }

    fn oldest(&self) -> Option<u64> {
        self.slots.iter().filter_map(|s| s.seq).min()
    }

    /// Takes the frame for this tick.
    pub fn pop(&mut self) -> Playout<'_> {
        if !self.playing {
            if self.stored < self.target {
                return Playout::Buffering;
            }
            self.playing = true;
            self.next = self.oldest();
        }
        let Some(mut next) = self.next else {
            return Playout::Buffering;
        };
        // Too far behind the newest frame: skip ahead to keep the delay bounded. (The highest
        // sequence seen is the newest frame stored whenever the condition can hold.)
        if let Some(newest) = self.highest {
            if newest >= next + self.max_frames as u64 {
                let resume = newest + 1 - self.target as u64;
                for slot in &mut self.slots {
                    if slot.seq.is_some_and(|s| s < resume) {
                        slot.seq = None;
                        self.stored -= 1;
                        self.discarded += 1;
                    }
                }
                next = resume;
            }
        }
        self.next = Some(next + 1);
        let i = self.slot_of(next);
        if self.slots[i].seq == Some(next) {
            self.slots[i].seq = None;
            self.stored -= 1;
            self.calm_ticks += 1;
            if self.calm_ticks > 500 && self.target > self.min_frames {
                self.target -= 1;
                self.calm_ticks = 0;
            }
            return Playout::Frame(&self.slots[i].payload);
        }
        if self.stored == 0 {
            // Underrun: the network is later than our delay. The frame is most likely late, not
            // lost: keep waiting for it and rebuffer with a larger target, so that the delay
            // grows by the frame concealed now instead of the late frame being thrown away.
            self.next = Some(next);
            self.playing = false;
            self.target = (self.target + 1).min(self.max_frames);
            self.calm_ticks = 0;
        }
        Playout::Lost
    }

    /// The payload of the frame due at the next pop, if it is already here. After a
    /// [`Playout::Lost`] this is the packet following the lost one, whose in-band FEC (Opus)
    /// can rebuild it.
    pub fn peek_next(&self) -> Option<&[u8]> {
        let next = self.next?;
        let slot = &self.slots[self.slot_of(next)];
        (slot.seq == Some(next)).then_some(slot.payload.as_slice())
    }

    /// Frames thrown away unplayed so far to keep the delay bounded (bursts, clock skew).
    pub fn discarded(&self) -> u64 {
        self.discarded
    }

    /// Frames waiting.
    pub fn len(&self) -> usize {
        self.stored
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.stored == 0
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
        assert_eq!(jb.pop(), Playout::Frame(&[1]));
        assert_eq!(jb.pop(), Playout::Frame(&[2]));
        assert!(jb.push(14, &[5]));
        assert_eq!(jb.pop(), Playout::Frame(&[3]));
        assert_eq!(jb.pop(), Playout::Lost); // 13 never came
        assert_eq!(jb.pop(), Playout::Frame(&[5]));
        assert!(!jb.push(12, &[3]), "too late");
    }

    #[test]
    fn wraps_around_and_bounds_delay() {
        let mut jb = JitterBuffer::new(20, 100);
        for s in [65534u16, 65535, 0, 1] {
            jb.push(s, &[s as u8]);
        }
        let played: Vec<Vec<u8>> = (0..4)
            .map(|_| match jb.pop() {
                Playout::Frame(p) => p.to_vec(),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(played, vec![vec![254], vec![255], vec![0], vec![1]]);
        for s in 2..40u16 {
            jb.push(s, &[0]);
        }
        jb.pop();
        assert!(jb.len() <= 5, "delay bounded by the maximum: {}", jb.len());
    }

    #[test]
    fn a_frame_late_by_less_than_a_tick_is_played_after_the_underrun() {
        let mut jb = JitterBuffer::new(20, 200);
        jb.push(1, &[1]);
        assert_eq!(jb.pop(), Playout::Frame(&[1]));
        assert_eq!(jb.pop(), Playout::Lost, "2 is not there at its tick");
        assert!(jb.push(2, &[2]), "2 arrives just after: still wanted");
        assert!(jb.push(3, &[3]));
        assert_eq!(jb.pop(), Playout::Frame(&[2]));
        assert_eq!(jb.pop(), Playout::Frame(&[3]));
        assert!(jb.push(4, &[4]));
        assert_eq!(jb.pop(), Playout::Frame(&[4]), "one frame of margin now");
    }

    #[test]
    fn a_gap_with_later_frames_waiting_is_a_loss() {
        let mut jb = JitterBuffer::new(20, 200);
        jb.push(1, &[1]);
        assert_eq!(jb.pop(), Playout::Frame(&[1]));
        jb.push(3, &[3]);
        assert_eq!(jb.pop(), Playout::Lost, "2 is missing, 3 is there");
        assert_eq!(jb.peek_next(), Some(&[3u8][..]), "3 can rebuild 2");
        assert_eq!(jb.pop(), Playout::Frame(&[3]));
        assert_eq!(jb.peek_next(), None, "4 has not come");
        assert!(!jb.push(2, &[2]), "2 is too late now");
    }

    #[test]
    fn overwritten_and_skipped_frames_are_counted() {
        let mut jb = JitterBuffer::new(20, 40); // 2 frames maximum, 4 slots
        for seq in 1..=4 {
            assert!(jb.push(seq, &[seq as u8]));
        }
        assert_eq!(jb.discarded(), 0);
        assert!(jb.push(5, &[5]), "5 takes the slot of 1");
        assert_eq!(jb.discarded(), 1);
        assert_eq!(jb.len(), 4);
        // Far behind the newest (5): playout skips to stay within the maximum delay.
        assert_eq!(jb.pop(), Playout::Frame(&[5]));
        assert_eq!(jb.discarded(), 4);
        assert!(jb.is_empty());
    }

    #[test]
    fn steady_playout_reuses_its_buffers() {
        let mut jb = JitterBuffer::new(40, 200);
        let payload = [0x55u8; 160];
        let mut played = 0;
        // Warm up: every slot has held a frame once.
        for seq in 0..100u16 {
            jb.push(seq, &payload);
            if matches!(jb.pop(), Playout::Frame(_)) {
                played += 1;
            }
        }
        let capacities: Vec<usize> = jb.slots.iter().map(|s| s.payload.capacity()).collect();
        assert!(capacities.iter().all(|c| *c >= 160), "{capacities:?}");
        for seq in 100..2000u16 {
            jb.push(seq, &payload);
            assert!(matches!(jb.pop(), Playout::Frame(_)));
            played += 1;
        }
        assert!(played > 1990);
        let after: Vec<usize> = jb.slots.iter().map(|s| s.payload.capacity()).collect();
        assert_eq!(
            capacities, after,
            "no slot grew: no allocation once warmed up"
        );
    }

    #[test]
    fn underrun_grows_the_target() {
        let mut jb = JitterBuffer::new(20, 200);
        jb.push(1, &[1]);
        assert_eq!(jb.pop(), Playout::Frame(&[1]));
        assert_eq!(jb.pop(), Playout::Lost);
        jb.push(2, &[2]);
        assert_eq!(jb.pop(), Playout::Buffering, "needs two frames now");
    }
}
