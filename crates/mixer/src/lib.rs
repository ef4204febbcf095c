//! Role-aware mix-minus for multi-party calls.
//!
//! Hand-written because it is the hottest loop of the server and no crate mixes by role: every
//! listener gets the sum of the speakers its role may hear, minus its own voice. The work per
//! tick is O(participants): speakers are summed once per class, each listener class's sum is
//! derived from the classes it hears (a fixed 6 × 5 table), and each listener's mix is its
//! class sum minus its own frame. Integer sums make that subtraction exact. No I/O, no async,
//! and no allocation after [`Mixer::new`].

mod limiter;
mod table;
mod vad;

pub use limiter::soft_limit;
pub use table::{HearingTable, ListenerClass, SpeakerClass, LISTENER_CLASSES, SPEAKER_CLASSES};
pub use vad::{VadConfig, VoiceActivity, VoiceEvent};

/// Largest frame: 20 ms at 48 kHz.
pub const MAX_FRAME: usize = 960;

/// The mix engine of one room at one sample rate.
///
/// Sums are i32: a frame of i16 samples can be added 65,536 times before an i32 could
/// overflow, far beyond any room (Plivo caps MPCs at 10 participants).
pub struct Mixer {
    frame_len: usize,
    table: HearingTable,
    speaker_sums: Box<[[i32; MAX_FRAME]; SPEAKER_CLASSES.len()]>,
    listener_sums: Box<[[i32; MAX_FRAME]; LISTENER_CLASSES.len()]>,
    speakers_present: [bool; SPEAKER_CLASSES.len()],
}

impl Mixer {
    /// A mixer for frames of `frame_len` samples (160 at 8 kHz, 320 at 16 kHz, 960 at 48 kHz);
    /// larger values are clamped to [`MAX_FRAME`].
    pub fn new(frame_len: usize, table: HearingTable) -> Self {
        Mixer {
            frame_len: frame_len.min(MAX_FRAME),
            table,
            speaker_sums: Box::new([[0; MAX_FRAME]; SPEAKER_CLASSES.len()]),
            listener_sums: Box::new([[0; MAX_FRAME]; LISTENER_CLASSES.len()]),
            speakers_present: [false; SPEAKER_CLASSES.len()],
        }
    }

    /// Samples per frame.
    pub fn frame_len(&self) -> usize {
        self.frame_len
    }

    /// The hearing table in use.
    pub fn table(&self) -> &HearingTable {
        &self.table
    }

    /// Replaces the hearing table (takes effect at the next [`Mixer::finish`]).
    pub fn set_table(&mut self, table: HearingTable) {
        self.table = table;
    }

    /// Starts a tick.
    pub fn begin(&mut self) {
        for (sum, present) in self.speaker_sums.iter_mut().zip(&mut self.speakers_present) {
            if *present {
                sum[..self.frame_len].fill(0);
                *present = false;
            }
        }
    }

    /// Adds one contributor's frame. The caller adds only participants that contribute
    /// (joined, MPC started, not muted, not on hold). A shorter frame is treated as padded
    /// with silence; extra samples are ignored.
    pub fn add(&mut self, class: SpeakerClass, pcm: &[i16]) {
        let i = class.index();
        self.speakers_present[i] = true;
        let n = self.frame_len.min(pcm.len());
        for (acc, s) in self.speaker_sums[i][..n].iter_mut().zip(&pcm[..n]) {
            *acc += i32::from(*s);
        }
    }

    /// Ends the adding phase: each listener class's sum of the speaker classes it hears.
    pub fn finish(&mut self) {
        let n = self.frame_len;
        for listener in LISTENER_CLASSES {
            let out = &mut self.listener_sums[listener.index()];
            out[..n].fill(0);
            for speaker in SPEAKER_CLASSES {
                let s = speaker.index();
                if self.speakers_present[s] && self.table.hears(listener, speaker) {
                    for (o, v) in out[..n].iter_mut().zip(&self.speaker_sums[s][..n]) {
                        *o += *v;
                    }
                }
            }
        }
    }

    /// One listener's mix into `out`: its class sum, minus `own` when it contributed and its
    /// class hears its own speaker class (nobody hears themselves), plus every frame in
    /// `extra` (beeps or announcements for this listener), through the soft limiter.
    /// `out` gets `min(out.len(), frame_len)` samples.
    pub fn mix_for(
        &self,
        listener: ListenerClass,
        own: Option<(SpeakerClass, &[i16])>,
        extra: &[&[i16]],
        out: &mut [i16],
    ) {
        let n = self.frame_len.min(out.len());
        let sum = &self.listener_sums[listener.index()][..n];
        let own = own
            .filter(|(class, _)| self.table.hears(listener, *class))
            .map(|(_, pcm)| pcm);
        match (own, extra.is_empty()) {
            // The common case (no beep playing) stays a straight, vectorisable loop.
            (Some(own), true) if own.len() >= n => {
                for ((o, s), v) in out[..n].iter_mut().zip(sum).zip(&own[..n]) {
                    *o = soft_limit(*s - i32::from(*v));
                }
            }
            (None, true) => {
                for (o, s) in out[..n].iter_mut().zip(sum) {
                    *o = soft_limit(*s);
                }
            }
            _ => {
                for (i, o) in out[..n].iter_mut().enumerate() {
                    let mut v = sum[i];
                    if let Some(own) = own {
                        v -= i32::from(own.get(i).copied().unwrap_or(0));
                    }
                    for e in extra {
                        v += i32::from(e.get(i).copied().unwrap_or(0));
                    }
                    *o = soft_limit(v);
                }
            }
        }
    }
}
