//! `<Stream>` on one call: the AI stream client of `huddle_aistream` (the same protocol,
//! signing, reconnects and status callbacks as an ai-agent member), fed by the call's own
//! heartbeat instead of a room: the caller's frames (inbound track) or what huddle plays
//! (outbound), and with `bidirectional` the service's `playAudio` mixed into what the caller
//! hears. The audio goes through the stream crate's bounded queues; nothing here waits.

use std::time::Duration;

use huddle_aistream::queue::{frame_queues, StreamAudio};
use huddle_aistream::stream::{Control, Stream as StreamClient, StreamIdentity};
use huddle_aistream::{StreamEnd, StreamSettings};
use huddle_roomport::TickAudio;
use huddle_xml::{AudioTrack, Stream};
use tokio::sync::{mpsc, oneshot};

use super::{Ending, XmlCall, FRAME, RATE};

/// A stream running beside (or in front of) the call's verbs.
pub(super) struct CallStream {
    audio: StreamAudio,
    control: mpsc::Sender<Control>,
    /// When the stream ended; taken by a `keepCallAlive` stream's verb.
    ended: Option<oneshot::Receiver<StreamEnd>>,
    track: AudioTrack,
    bidirectional: bool,
    /// The caller's last frame, summed with the outbound one for `audioTrack="both"`.
    inbound: [i16; FRAME],
    scratch: [i16; FRAME],
}

impl CallStream {
    /// A frame from the caller.
    pub(super) fn inbound(&mut self, pcm: &[i16]) {
        match self.track {
            AudioTrack::Inbound => self.audio.send(pcm),
            AudioTrack::Both => {
                let n = pcm.len().min(FRAME);
                self.inbound[..n].copy_from_slice(&pcm[..n]);
            }
            AudioTrack::Outbound => {}
        }
    }

    /// The frame about to go to the caller: the service's voice is mixed in (bidirectional)
    /// and the outbound track is sent.
    pub(super) fn outbound(&mut self, frame: &mut [i16]) {
        // Always drained, so that a one-way stream's playAudio cannot pile up.
        if let Some(n) = self.audio.receive(&mut self.scratch) {
            if self.bidirectional {
                for (out, s) in frame.iter_mut().zip(&self.scratch[..n]) {
                    *out = out.saturating_add(*s);
                }
            }
        }
        match self.track {
            AudioTrack::Outbound => self.audio.send(frame),
            AudioTrack::Both => {
                for (sum, s) in self.inbound.iter_mut().zip(frame.iter()) {
                    *sum = sum.saturating_add(*s);
                }
                self.audio.send(&self.inbound[..frame.len().min(FRAME)]);
                self.inbound.fill(0);
            }
            AudioTrack::Inbound => {}
        }
    }

    /// A digit the caller pressed goes to the service as a `dtmf` event.
    pub(super) fn digit(&self, digit: char) {
        if self.control.try_send(Control::Dtmf(digit)).is_err() {
            metrics::counter!("huddle_aistream_frames_dropped_total", "direction" => "to_service", "what" => "dtmf").increment(1);
        }
    }
}

impl Drop for CallStream {
    /// The call is done with the stream (it hung up, or a newer `<Stream>` replaced it).
    fn drop(&mut self) {
        let _ = self.control.try_send(Control::Stop);
    }
}

impl XmlCall {
    /// `<Stream>`: starts the stream; with `keepCallAlive` waits until it ends.
    pub(super) async fn stream(&mut self, s: &Stream) -> Result<(), Ending> {
        self.answer().await?;
        let settings = match StreamSettings::from_xml(&s.as_ai_agent_stream()) {
            Ok(settings) => settings,
            Err(e) => {
                tracing::warn!(error = %e, "Stream skipped: no usable stream settings");
                return Ok(());
            }
        };
        let identity = StreamIdentity {
            call_uuid: self.params.call_uuid.clone(),
            stream_id: uuid::Uuid::new_v4().to_string(),
            // Not in an MPC: the member fields stay empty.
            mpc_name: String::new(),
            mpc_uuid: String::new(),
            member_id: 0,
            from: self.params.from.clone(),
            to: self.params.to.clone(),
            direction: self.params.direction,
        };
        tracing::info!(stream_id = %identity.stream_id, url = %settings.url, bidirectional = s.bidirectional, track = s.audio_track.as_str(), "Stream");
        let (audio, port) = frame_queues(RATE);
        let (control, control_rx) = mpsc::channel(64);
        let client = StreamClient::new(
            settings,
            identity,
            self.ctx.ai_streams.clone(),
            port,
            RATE,
            control_rx,
        );
        let (end_tx, ended) = oneshot::channel();
        let stop = control.clone();
        let timeout = Duration::from_secs(u64::from(s.stream_timeout_secs));
        tokio::spawn(async move {
            let run = client.run();
            tokio::pin!(run);
            let end = tokio::select! {
                end = &mut run => end,
                _ = tokio::time::sleep(timeout) => {
                    tracing::info!("streamTimeout reached: stopping the stream");
                    let _ = stop.send(Control::Stop).await;
                    (&mut run).await
                }
            };
            let _ = end_tx.send(end);
        });
        // A newer stream replaces the one running (dropping it stops it).
        self.stream = Some(CallStream {
            audio,
            control,
            ended: Some(ended),
            track: s.audio_track,
            bidirectional: s.bidirectional,
            inbound: [0; FRAME],
            scratch: [0; FRAME],
        });
        if !s.keep_call_alive {
            return Ok(());
        }
        let Some(ended) = self.stream.as_mut().and_then(|st| st.ended.take()) else {
            return Ok(());
        };
        let end = self.pump_until(ended).await?;
        tracing::info!(?end, "the stream ended; going on with the next verb");
        self.stream = None;
        Ok(())
    }
}
