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
}

impl VoiceActivity {
    /// A detector that starts quiet.
    pub fn new(config: VadConfig) -> Self {
        VoiceActivity {
            config,
            active: false,
            loud_run: 0,
            quiet_run: 0,
        }
    }

    /// Feeds one frame; returns an event on a transition.
    pub fn push(&mut self, pcm: &[i16]) -> Option<VoiceEvent> {
        let rms = rms(pcm);
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

    /// Back to quiet without an event (the participant left, was muted, ...).
    pub fn reset(&mut self) {
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
