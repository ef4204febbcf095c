//! `<Stream>` on one call: the AI stream client of `huddle_aistream` (the same protocol,
//! signing, reconnects and status callbacks as an ai-agent member), fed by the call's taps
//! (the call's heartbeat, or the room's tick while the call is in an MPC): the caller's frames
//! (inbound track), what the caller hears (outbound), or both as two tracks, and with
//! `bidirectional` the service's `playAudio` mixed into what the caller hears. The audio goes
//! through the stream crate's bounded queues; nothing here waits.

use std::time::Duration;

use huddle_aistream::queue::frame_queues;
use huddle_aistream::stream::{Control, Stream as StreamClient, StreamIdentity};
use huddle_aistream::{StreamEnd, StreamSettings};
use huddle_xml::Stream;
use tokio::sync::{mpsc, oneshot};

use super::taps::{self, StreamTap};
use super::{Ending, XmlCall, RATE};

/// A stream running beside (or in front of) the call's verbs. Its audio side is the call's
/// [`StreamTap`], fed by the call's heartbeat outside a room and by the room's tick inside.
pub(super) struct CallStream {
    control: mpsc::Sender<Control>,
    /// When the stream ended; taken by a `keepCallAlive` stream's verb.
    ended: Option<oneshot::Receiver<StreamEnd>>,
}

impl CallStream {
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
    /// Stops the call's stream, if any: its task is told, its tap removed.
    pub(super) fn stop_stream(&mut self) {
        self.stream = None;
        taps::lock(&self.taps).stream = None;
    }

    /// `<Stream>`: starts the stream; with `keepCallAlive` waits until it ends.
    pub(super) async fn stream(&mut self, s: &Stream) -> Result<(), Ending> {
        self.answer().await?;
        let settings = match StreamSettings::from_xml(&s.as_ai_agent_stream()) {
            Ok(settings) => StreamSettings {
                track: s.audio_track,
                ..settings
            },
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
            control,
            ended: Some(ended),
        });
        taps::lock(&self.taps).stream = Some(StreamTap::new(audio, s.audio_track, s.bidirectional));
        if !s.keep_call_alive {
            return Ok(());
        }
        let Some(ended) = self.stream.as_mut().and_then(|st| st.ended.take()) else {
            return Ok(());
        };
        let end = self.pump_until(ended).await?;
        tracing::info!(?end, "the stream ended; going on with the next verb");
        self.stop_stream();
        Ok(())
    }
}
