//! The frame queues between a room's mixing thread and the stream's task. The room side,
//! [`StreamAudio`], is the member's [`TickAudio`]: on each tick it takes at most one frame of
//! the service's voice and hands over the member's mix, both with `try_` operations on
//! bounded channels whose slots are allocated when the stream is made, so a tick never waits,
//! never allocates, and a slow service loses only its own frames (counted).
//!
//! Clearing and checkpoints cross as atomics: the task bumps the clear generation and the
//! room skips every queued frame of an older one at its next tick; the room publishes the
//! sequence number of the last frame it played and the task answers checkpoints from it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::Arc;

use huddle_media::TickAudio;
use huddle_mixer::MAX_FRAME;

/// Frames of the member's mix waiting for the task: one second.
pub const TO_SERVICE_FRAMES: usize = 50;
/// Frames of the service's voice queued for the room: 200 ms. The rest of the playback queue
/// waits in the task, where clearing it costs the room nothing.
pub const TO_ROOM_FRAMES: usize = 10;

/// Which side of a call a frame for the service carries (the `track` of spec/ai-stream.md):
/// what the member says, or what it hears. An ai-agent member's mix is its inbound track.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    /// What the caller says.
    Inbound,
    /// What the caller hears.
    Outbound,
}

impl Track {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Track::Inbound => "inbound",
            Track::Outbound => "outbound",
        }
    }

    /// 0 for inbound, 1 for outbound: the index of per-track state.
    pub fn index(self) -> usize {
        match self {
            Track::Inbound => 0,
            Track::Outbound => 1,
        }
    }
}

/// One 20 ms frame at the room's rate, by value (the channels' slots hold it in place).
#[derive(Clone, Copy)]
pub struct Frame {
    samples: [i16; MAX_FRAME],
    len: u16,
    /// The side of the call it carries (frames for the service only).
    track: Track,
    /// Playback order, from 1 (0 for frames of the mix).
    seq: u64,
    /// The clear generation it was queued in.
    generation: u64,
}

impl Frame {
    fn new(pcm: &[i16], seq: u64, generation: u64) -> Frame {
        let len = pcm.len().min(MAX_FRAME);
        let mut samples = [0; MAX_FRAME];
        samples[..len].copy_from_slice(&pcm[..len]);
        Frame {
            samples,
            len: len as u16,
            track: Track::Inbound,
            seq,
            generation,
        }
    }

    /// The samples.
    pub fn pcm(&self) -> &[i16] {
        &self.samples[..usize::from(self.len)]
    }

    /// The side of the call it carries.
    pub fn track(&self) -> Track {
        self.track
    }
}

/// State both sides read without a lock.
#[derive(Default)]
pub struct Shared {
    generation: AtomicU64,
    played: AtomicU64,
    /// Frames of the mix the task was too slow to take.
    mix_dropped: AtomicU64,
}

/// The room's end: the member's [`TickAudio`].
pub struct StreamAudio {
    to_service: SyncSender<Frame>,
    from_service: Receiver<Frame>,
    shared: Arc<Shared>,
    /// The rate both queues' frames are at.
    rate: u32,
}

impl TickAudio for StreamAudio {
    fn rate(&self) -> u32 {
        self.rate
    }

    fn receive(&mut self, out: &mut [i16]) -> Option<usize> {
        let generation = self.shared.generation.load(Ordering::Acquire);
        loop {
            match self.from_service.try_recv() {
                // Cleared after it was queued: skipped, so a clear cuts within one tick.
                Ok(frame) if frame.generation < generation => continue,
                Ok(frame) => {
                    let n = frame.pcm().len().min(out.len());
                    out[..n].copy_from_slice(&frame.pcm()[..n]);
                    self.shared.played.store(frame.seq, Ordering::Release);
                    return Some(n);
                }
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return None,
            }
        }
    }

    fn send(&mut self, pcm: &[i16]) {
        self.send_track(pcm, Track::Inbound);
    }
}

impl StreamAudio {
    /// Hands the service a frame of one side of the call (a `<Stream>` sends either or both
    /// sides; an ai-agent member's mix is inbound). Never waits: a full queue loses the frame
    /// (counted).
    pub fn send_track(&mut self, pcm: &[i16], track: Track) {
        let mut frame = Frame::new(pcm, 0, 0);
        frame.track = track;
        match self.to_service.try_send(frame) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {
                self.shared.mix_dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// The stream task's end.
pub struct ServicePort {
    from_room: Receiver<Frame>,
    to_room: SyncSender<Frame>,
    shared: Arc<Shared>,
    next_seq: u64,
}

impl ServicePort {
    /// The next frame of the member's mix, if the room has handed one over.
    pub fn mix(&mut self) -> Option<Frame> {
        self.from_room.try_recv().ok()
    }

    /// Queues a frame of the service's voice; false (frame kept by the caller) when the
    /// room's queue is full.
    pub fn play(&mut self, pcm: &[i16]) -> bool {
        let frame = Frame::new(
            pcm,
            self.next_seq + 1,
            self.shared.generation.load(Ordering::Acquire),
        );
        match self.to_room.try_send(frame) {
            Ok(()) => {
                self.next_seq += 1;
                true
            }
            Err(_) => false,
        }
    }

    /// The sequence number of the last frame queued (0 before any).
    pub fn last_queued(&self) -> u64 {
        self.next_seq
    }

    /// The sequence number of the last frame the room played.
    pub fn last_played(&self) -> u64 {
        self.shared.played.load(Ordering::Acquire)
    }

    /// Makes the room skip every frame queued so far, from its next tick on.
    pub fn clear(&mut self) {
        self.shared.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Frames of the mix lost because the task fell behind, since the last call.
    pub fn take_mix_dropped(&self) -> u64 {
        self.shared.mix_dropped.swap(0, Ordering::Relaxed)
    }
}

/// A connected pair: the room's [`StreamAudio`] and the task's [`ServicePort`], carrying
/// frames at `rate` Hz (the room converts them to and from its own mixing rate).
pub fn frame_queues(rate: u32) -> (StreamAudio, ServicePort) {
    let (to_service, from_room) = mpsc::sync_channel(TO_SERVICE_FRAMES);
    let (to_room, from_service) = mpsc::sync_channel(TO_ROOM_FRAMES);
    let shared = Arc::new(Shared::default());
    (
        StreamAudio {
            to_service,
            from_service,
            shared: shared.clone(),
            rate,
        },
        ServicePort {
            from_room,
            to_room,
            shared,
            next_seq: 0,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_cross_both_ways_and_played_is_published() {
        let (mut room, mut task) = frame_queues(8000);
        room.send(&[7; 160]);
        assert_eq!(task.mix().unwrap().pcm(), &[7; 160][..]);
        assert!(task.mix().is_none());
        assert!(task.play(&[3; 160]));
        assert_eq!(task.last_queued(), 1);
        let mut out = [0; 160];
        assert_eq!(room.receive(&mut out), Some(160));
        assert_eq!(out, [3; 160]);
        assert_eq!(task.last_played(), 1);
        assert_eq!(room.receive(&mut out), None);
    }

    #[test]
    fn frames_keep_their_track() {
        let (mut room, mut task) = frame_queues(8000);
        room.send(&[1; 160]);
        room.send_track(&[2; 160], Track::Outbound);
        assert_eq!(task.mix().unwrap().track(), Track::Inbound);
        let outbound = task.mix().unwrap();
        assert_eq!(outbound.track(), Track::Outbound);
        assert_eq!(outbound.pcm(), &[2; 160][..]);
    }

    #[test]
    fn a_slow_task_loses_mix_frames_and_the_room_never_waits() {
        let (mut room, task) = frame_queues(8000);
        for _ in 0..TO_SERVICE_FRAMES + 7 {
            room.send(&[1; 160]);
        }
        assert_eq!(task.take_mix_dropped(), 7);
        assert_eq!(task.take_mix_dropped(), 0);
    }

    #[test]
    fn the_room_queue_is_bounded() {
        let (_room, mut task) = frame_queues(8000);
        for _ in 0..TO_ROOM_FRAMES {
            assert!(task.play(&[1; 160]));
        }
        assert!(!task.play(&[1; 160]));
        assert_eq!(task.last_queued(), TO_ROOM_FRAMES as u64);
    }

    #[test]
    fn a_clear_skips_everything_queued_before_it_at_the_next_tick() {
        let (mut room, mut task) = frame_queues(8000);
        for _ in 0..5 {
            task.play(&[9; 160]);
        }
        task.clear();
        task.play(&[4; 160]);
        let mut out = [0; 160];
        assert_eq!(room.receive(&mut out), Some(160));
        assert_eq!(out, [4; 160]);
        assert_eq!(task.last_played(), 6);
        assert_eq!(room.receive(&mut out), None);
    }
}
