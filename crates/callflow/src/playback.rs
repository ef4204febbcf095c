//! Sources of outgoing audio for a call leg, one 20 ms frame at a time: decoded prompts with
//! Plivo's `loop` semantics, and silence.

use std::sync::Arc;

/// Something that fills outgoing frames.
pub trait FrameSource: Send {
    /// Fills `out` with the next frame; false when the source is exhausted (then `out` is
    /// left silent).
    fn fill(&mut self, out: &mut [i16]) -> bool;

    /// A DTMF digit to send alongside the audio, if the source has one.
    fn take_dtmf(&mut self) -> Option<(char, u32)> {
        None
    }

    /// Whether the leg sends this source's frames at all; false keeps the leg's RTP quiet
    /// (no packets, not even silence) while the source plays.
    fn sends(&self) -> bool {
        true
    }
}

/// Sends nothing, forever: a call that anchors an ai-agent stream gets no RTP (design.md
/// "AI agents": its own RTP is neither mixed nor sent anything).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAudio;

impl FrameSource for NoAudio {
    fn fill(&mut self, out: &mut [i16]) -> bool {
        out.fill(0);
        true
    }

    fn sends(&self) -> bool {
        false
    }
}

/// Plays PCM `loops` times (None: until interrupted).
#[derive(Debug, Clone)]
pub struct PcmPlayer {
    pcm: Arc<[i16]>,
    position: usize,
    loops_left: Option<u32>,
}

impl PcmPlayer {
    /// A player; `loop_count` 0 means forever (Plivo's `loop="0"`).
    pub fn new(pcm: Arc<[i16]>, loop_count: u32) -> Self {
        PcmPlayer {
            pcm,
            position: 0,
            loops_left: (loop_count > 0).then_some(loop_count),
        }
    }
}

impl FrameSource for PcmPlayer {
    fn fill(&mut self, out: &mut [i16]) -> bool {
        if self.pcm.is_empty() || self.loops_left == Some(0) {
            out.fill(0);
            return false;
        }
        let mut written = 0;
        while written < out.len() {
            if self.position == self.pcm.len() {
                self.position = 0;
                if let Some(left) = self.loops_left.as_mut() {
                    *left -= 1;
                    if *left == 0 {
                        out[written..].fill(0);
                        // The tail of the last pass still went out in this frame.
                        return written > 0;
                    }
                }
            }
            let n = (out.len() - written).min(self.pcm.len() - self.position);
            out[written..written + n].copy_from_slice(&self.pcm[self.position..self.position + n]);
            written += n;
            self.position += n;
        }
        true
    }
}

/// Silence for a number of frames (None: forever).
#[derive(Debug, Clone, Copy)]
pub struct Silence {
    frames_left: Option<u64>,
}

impl Silence {
    /// `frames` frames of silence.
    pub fn frames(frames: u64) -> Self {
        Silence {
            frames_left: Some(frames),
        }
    }

    /// Silence until interrupted.
    pub fn forever() -> Self {
        Silence { frames_left: None }
    }
}

impl FrameSource for Silence {
    fn fill(&mut self, out: &mut [i16]) -> bool {
        out.fill(0);
        match self.frames_left.as_mut() {
            None => true,
            Some(0) => false,
            Some(n) => {
                *n -= 1;
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(source: &mut dyn FrameSource, len: usize) -> Vec<Vec<i16>> {
        let mut out = Vec::new();
        let mut buf = vec![0i16; len];
        while source.fill(&mut buf) {
            out.push(buf.clone());
            assert!(out.len() < 10_000, "source never ends");
        }
        out
    }

    #[test]
    fn pcm_plays_loop_times_with_the_tail_padded() {
        let pcm: Arc<[i16]> = (1..=5).collect::<Vec<i16>>().into();
        let got = frames(&mut PcmPlayer::new(pcm, 2), 4);
        assert_eq!(
            got,
            vec![vec![1, 2, 3, 4], vec![5, 1, 2, 3], vec![4, 5, 0, 0]]
        );
    }

    #[test]
    fn loop_zero_repeats_until_stopped() {
        let pcm: Arc<[i16]> = vec![7i16; 3].into();
        let mut p = PcmPlayer::new(pcm, 0);
        let mut buf = [0i16; 160];
        for _ in 0..1000 {
            assert!(p.fill(&mut buf));
            assert!(buf.iter().all(|s| *s == 7));
        }
    }

    #[test]
    fn empty_pcm_and_silence_end() {
        assert!(frames(&mut PcmPlayer::new(Arc::from(Vec::new()), 0), 160).is_empty());
        let got = frames(&mut Silence::frames(50), 160);
        assert_eq!(got.len(), 50);
        assert!(got.iter().flatten().all(|s| *s == 0));
    }
}
