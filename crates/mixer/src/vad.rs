//! Voice activity per participant: frame energy with a start confirmation and a hangover, so
//! that the pauses between words do not make speak events flap.

/// Thresholds, in RMS of 16-bit samples, and frame counts (20 ms frames).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VadConfig {
    /// Speech starts above this level...
    pub start_rms: f32,
    /// ...held for this many consecutive frames.
    pub start_frames: u32,
    /// Below this level a frame counts as quiet. Lower than `start_rms` on purpose: a voice
    /// hovering around one threshold would otherwise toggle on every frame.
    pub stop_rms: f32,
    /// Speech stops after this many consecutive quiet frames.
    pub hangover_frames: u32,
}

impl Default for VadConfig {
    /// Telephony at 8 kHz: line noise and comfort noise sit below ~100 RMS, speech at
    /// 500–5000; starting needs 40 ms, stopping 400 ms of quiet.
    fn default() -> Self {
        VadConfig {
            start_rms: 400.0,
            start_frames: 2,
            stop_rms: 250.0,
            hangover_frames: 20,
        }
    }
}

/// A speaking transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoiceEvent {
    /// Speech started.
    Started,
    /// Speech stopped.
    Stopped,
}

/// The detector of one participant.
#[derive(Debug, Clone)]
pub struct VoiceActivity {
    config: VadConfig,
    active: bool,
    loud_run: u32,
    quiet_run: u32,
    /// RMS of the last frame pushed.
    last_rms: f32,
}

impl VoiceActivity {
    /// A detector that starts quiet.
    pub fn new(config: VadConfig) -> Self {
        VoiceActivity {
            config,
            active: false,
            loud_run: 0,
            quiet_run: 0,
            last_rms: 0.0,
        }
    }

    /// Feeds one frame; returns an event on a transition.
    pub fn push(&mut self, pcm: &[i16]) -> Option<VoiceEvent> {
        let rms = rms(pcm);
        self.last_rms = rms;
        if self.active {
            if rms < self.config.stop_rms {
                self.quiet_run = self.quiet_run.saturating_add(1);
                if self.quiet_run >= self.config.hangover_frames {
                    self.active = false;
                    self.quiet_run = 0;
                    self.loud_run = 0;
                    return Some(VoiceEvent::Stopped);
                }
            } else {
                self.quiet_run = 0;
            }
        } else if rms >= self.config.start_rms {
            self.loud_run = self.loud_run.saturating_add(1);
            if self.loud_run >= self.config.start_frames {
                self.active = true;
                self.loud_run = 0;
                self.quiet_run = 0;
                return Some(VoiceEvent::Started);
            }
        } else {
            self.loud_run = 0;
        }
        None
    }

    /// Whether the participant is speaking.
    pub fn is_active(&self) -> bool {
        self.active
    }

    /// Whether the last frame carries voice worth mixing: the participant is speaking (which
    /// includes the hangover between words), or the frame is at least as loud as the level
    /// below which speech counts as stopped. The second half keeps a word's first frames,
    /// before the start is confirmed, and soft speech that never confirms a start; what it
    /// leaves out is line noise, comfort noise and digital silence.
    pub fn hears_voice(&self) -> bool {
        self.active || self.last_rms >= self.config.stop_rms
    }

    /// Back to quiet without an event (the participant left, was muted, ...).
    pub fn reset(&mut self) {
        self.last_rms = 0.0;
        self.active = false;
        self.loud_run = 0;
        self.quiet_run = 0;
    }
}

fn rms(pcm: &[i16]) -> f32 {
    if pcm.is_empty() {
        return 0.0;
    }
    let energy: i64 = pcm.iter().map(|s| i64::from(*s) * i64::from(*s)).sum();
    ((energy as f64 / pcm.len() as f64).sqrt()) as f32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voice_is_heard_from_its_first_loud_frame_through_the_hangover_not_in_noise() {
        let mut vad = VoiceActivity::new(VadConfig::default());
        let (noise, speech) = ([60i16; 160], [2000i16; 160]);
        vad.push(&noise);
        assert!(!vad.hears_voice(), "line noise is not mixed");
        vad.push(&[0; 160]);
        assert!(!vad.hears_voice(), "digital silence is not mixed");
        assert_eq!(vad.push(&speech), None);
        assert!(
            vad.hears_voice(),
            "the first loud frame, before the start is confirmed"
        );
        assert_eq!(vad.push(&speech), Some(VoiceEvent::Started));
        // A pause between words stays mixed for the hangover, then stops.
        for _ in 0..VadConfig::default().hangover_frames - 1 {
            assert_eq!(vad.push(&noise), None);
            assert!(vad.hears_voice());
        }
        assert_eq!(vad.push(&noise), Some(VoiceEvent::Stopped));
        assert!(!vad.hears_voice());
        // Soft speech that never confirms a start is still mixed.
        vad.push(&[300; 160]);
        assert!(vad.hears_voice());
        vad.reset();
        assert!(!vad.hears_voice());
    }
}
