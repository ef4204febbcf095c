//! What listens to a call beside its verbs: a `<Stream>`'s audio and a `<Record
//! recordSession="true">` recording. Outside a room the call's own heartbeat feeds them; while
//! the call is a member of a room its audio is lent to the room's mixing thread, and
//! [`TappedAudio`] (the loan, wrapped) feeds them from the room's tick instead: the frame the
//! caller said as the room receives it, the mix the caller hears as the room sends it.
//!
//! Both sides reach the taps through one mutex that only the call's task and, while the call
//! is a member, the room's tick touch. The tick only ever *tries* it: were the call's task
//! inside at that instant, the tick skips the taps for that frame rather than wait. Everything
//! a tap does per frame is a copy into preallocated room (the stream crate's bounded queues,
//! the recorder's frame pool): no allocation, no waiting.

use std::sync::{Arc, Mutex, MutexGuard};

use huddle_aistream::queue::{StreamAudio, Track};
use huddle_roomport::TickAudio;
use huddle_xml::AudioTrack;

/// Longest frame a tap handles: 20 ms at 48 kHz (calls run at 8 kHz today).
const MAX_TAP_FRAME: usize = 960;

/// A `<Stream>`'s audio side: the queues to its task, and which sides of the call it sends.
pub(super) struct StreamTap {
    audio: StreamAudio,
    track: AudioTrack,
    bidirectional: bool,
    scratch: [i16; MAX_TAP_FRAME],
}

impl StreamTap {
    /// The tap of a stream sending `track` (with `bidirectional`, the service is heard).
    pub(super) fn new(audio: StreamAudio, track: AudioTrack, bidirectional: bool) -> Self {
        StreamTap {
            audio,
            track,
            bidirectional,
            scratch: [0; MAX_TAP_FRAME],
        }
    }

    fn inbound(&mut self, pcm: &[i16]) {
        if self.track != AudioTrack::Outbound {
            self.audio.send_track(pcm, Track::Inbound);
        }
    }

    fn outbound(&mut self, frame: &mut [i16]) {
        // Always drained, so that a one-way stream's playAudio cannot pile up.
        if let Some(n) = self.audio.receive(&mut self.scratch) {
            if self.bidirectional {
                for (out, s) in frame.iter_mut().zip(&self.scratch[..n]) {
                    *out = out.saturating_add(*s);
                }
            }
        }
        if self.track != AudioTrack::Inbound {
            self.audio.send_track(frame, Track::Outbound);
        }
    }
}

/// A background recording of the whole call (`recordSession`): what the caller says and what
/// it hears, summed into one mono file.
pub(super) struct SessionTap {
    recorder: huddle_record::Recorder,
    /// The caller's last frame, waiting for the frame it hears at the same tick.
    said: [i16; MAX_TAP_FRAME],
    said_len: usize,
}

impl SessionTap {
    /// A tap writing into `recorder`.
    pub(super) fn new(recorder: huddle_record::Recorder) -> Self {
        SessionTap {
            recorder,
            said: [0; MAX_TAP_FRAME],
            said_len: 0,
        }
    }

    fn inbound(&mut self, pcm: &[i16]) {
        let n = pcm.len().min(MAX_TAP_FRAME);
        self.said[..n].copy_from_slice(&pcm[..n]);
        self.said_len = n;
    }

    fn outbound(&mut self, frame: &[i16]) {
        let n = frame.len().min(MAX_TAP_FRAME);
        for (said, heard) in self.said[..n].iter_mut().zip(frame) {
            *said = said.saturating_add(*heard);
        }
        self.recorder.push(&self.said[..n]);
        self.said[..n.max(self.said_len)].fill(0);
        self.said_len = 0;
    }
}

/// Everything tapping one call.
#[derive(Default)]
pub(super) struct Taps {
    /// The running `<Stream>`, if any.
    pub(super) stream: Option<StreamTap>,
    /// The running `recordSession` recording, if any.
    pub(super) session: Option<SessionTap>,
}

impl Taps {
    /// True when something listens.
    pub(super) fn active(&self) -> bool {
        self.stream.is_some() || self.session.is_some()
    }

    /// A frame the caller said.
    pub(super) fn inbound(&mut self, pcm: &[i16]) {
        if let Some(stream) = self.stream.as_mut() {
            stream.inbound(pcm);
        }
        if let Some(session) = self.session.as_mut() {
            session.inbound(pcm);
        }
    }

    /// The frame about to go to the caller: a bidirectional stream's voice is mixed in, then
    /// the taps hear it.
    pub(super) fn outbound(&mut self, frame: &mut [i16]) {
        if let Some(stream) = self.stream.as_mut() {
            stream.outbound(frame);
        }
        if let Some(session) = self.session.as_mut() {
            session.outbound(frame);
        }
    }
}

/// The taps, shared between the call's task and a room's tick.
pub(super) type SharedTaps = Arc<Mutex<Taps>>;

/// Locks the taps from the call's task (the room's tick holds them for one frame at most).
pub(super) fn lock(taps: &SharedTaps) -> MutexGuard<'_, Taps> {
    taps.lock().unwrap_or_else(|p| p.into_inner())
}

/// A call's audio on loan to a room, with the call's taps listening on the room's tick.
pub(super) struct TappedAudio<A: TickAudio> {
    inner: A,
    taps: SharedTaps,
    frame: [i16; MAX_TAP_FRAME],
}

impl<A: TickAudio> TappedAudio<A> {
    /// Wraps the loan `inner`.
    pub(super) fn new(inner: A, taps: SharedTaps) -> Self {
        TappedAudio {
            inner,
            taps,
            frame: [0; MAX_TAP_FRAME],
        }
    }
}

impl<A: TickAudio> TickAudio for TappedAudio<A> {
    fn rate(&self) -> u32 {
        self.inner.rate()
    }

    fn receive(&mut self, out: &mut [i16]) -> Option<usize> {
        let n = self.inner.receive(out)?;
        if let Ok(mut taps) = self.taps.try_lock() {
            taps.inbound(&out[..n]);
        }
        Some(n)
    }

    fn send(&mut self, pcm: &[i16]) {
        let n = pcm.len().min(MAX_TAP_FRAME);
        if n < pcm.len() {
            // Wider than any rate a call runs at: sent untapped.
            self.inner.send(pcm);
            return;
        }
        self.frame[..n].copy_from_slice(pcm);
        if let Ok(mut taps) = self.taps.try_lock() {
            taps.outbound(&mut self.frame[..n]);
        }
        self.inner.send(&self.frame[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use huddle_aistream::queue::frame_queues;

    /// A loan that hears a constant and records what it is sent.
    struct Fake {
        said: i16,
        sent: Vec<i16>,
    }

    impl TickAudio for Fake {
        fn rate(&self) -> u32 {
            8000
        }

        fn receive(&mut self, out: &mut [i16]) -> Option<usize> {
            out[..160].fill(self.said);
            Some(160)
        }

        fn send(&mut self, pcm: &[i16]) {
            self.sent.extend_from_slice(pcm);
        }
    }

    #[test]
    fn the_room_tick_feeds_each_track_and_the_service_is_heard() {
        for (track, expect) in [
            (AudioTrack::Inbound, vec![(Track::Inbound, 5)]),
            (AudioTrack::Outbound, vec![(Track::Outbound, 9)]),
            (
                AudioTrack::Both,
                vec![(Track::Inbound, 5), (Track::Outbound, 9)],
            ),
        ] {
            let (audio, mut port) = frame_queues(8000);
            let taps: SharedTaps = Arc::new(Mutex::new(Taps {
                stream: Some(StreamTap::new(audio, track, false)),
                session: None,
            }));
            let mut tapped = TappedAudio::new(
                Fake {
                    said: 5,
                    sent: Vec::new(),
                },
                taps.clone(),
            );
            let mut out = [0i16; 160];
            assert_eq!(tapped.receive(&mut out), Some(160));
            tapped.send(&[9; 160]);
            let mut got = Vec::new();
            while let Some(frame) = port.mix() {
                got.push((frame.track(), frame.pcm()[0]));
            }
            assert_eq!(got, expect, "{track:?}");
            assert_eq!(tapped.inner.sent, vec![9; 160], "the caller hears the mix");
        }
    }

    #[test]
    fn a_tick_never_waits_for_the_taps() {
        let (audio, mut port) = frame_queues(8000);
        let taps: SharedTaps = Arc::new(Mutex::new(Taps {
            stream: Some(StreamTap::new(audio, AudioTrack::Both, false)),
            session: None,
        }));
        let mut tapped = TappedAudio::new(
            Fake {
                said: 5,
                sent: Vec::new(),
            },
            taps.clone(),
        );
        let held = lock(&taps);
        let mut out = [0i16; 160];
        assert_eq!(tapped.receive(&mut out), Some(160));
        tapped.send(&[9; 160]);
        drop(held);
        assert!(port.mix().is_none(), "skipped while the call held the taps");
        assert_eq!(tapped.inner.sent, vec![9; 160], "the caller still hears");
    }
}
