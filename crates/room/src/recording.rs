//! The room's end of its recording: the file's place, the recorder the tick feeds, and the
//! Completed or Failed callback once the writer is done.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use huddle_media::resample::FrameResampler;
use huddle_mixer::ListenerClass;
use huddle_record::{Finished, Format, RecordError, Recorder};
use huddle_roomport::{MpcUuid, RecordingId};
use huddle_xml::RecordFormat;

use crate::clock::plivo_timestamp;
use crate::events::{EventName, RoomEvent};
use crate::journal::{LiveRecording, RecordingKind};
use crate::registry::RoomDeps;
use crate::state::{role_channels, Recording, TrackRecording, TrackSource};

/// Where recordings are written, and the URLs they are served at.
#[derive(Debug, Clone)]
pub struct RecordingPlace {
    /// Directory of the files (`storage.recordings`).
    pub dir: PathBuf,
    /// URL prefix of the files: `{http.public_url}/v1/Account/{auth_id}/Recording/`.
    pub url_base: String,
}

impl RecordingPlace {
    /// The file of a recording.
    pub fn path(&self, id: &RecordingId, format: Format) -> PathBuf {
        self.dir.join(format!("{id}.{}", format.extension()))
    }

    /// `RecordingURL`.
    pub fn url(&self, id: &RecordingId, format: Format) -> String {
        format!("{}{id}.{}", self.url_base, format.extension())
    }

    /// `RecordingResourceURL`.
    pub fn resource_url(&self, id: &RecordingId) -> String {
        format!("{}{id}/", self.url_base)
    }
}

/// The recorder format of an XML/API format.
pub fn format_of(format: RecordFormat) -> Format {
    match format {
        RecordFormat::Wav => Format::Wav,
        RecordFormat::Mp3 => Format::Mp3,
    }
}

/// A recording being written.
pub(crate) struct ActiveRecording {
    pub(crate) recorder: Recorder,
    /// Whose mix it records: with or without the coach's voice.
    pub(crate) listener: ListenerClass,
    /// The file's rate: the room's when the recording started. A file cannot change rate
    /// midway, so when the room switches (a wideband member joined) each mix is converted.
    rate: u32,
    /// Set while the room mixes at another rate than the file's: the converter and its
    /// output frame, made at the switch.
    convert: Option<(FrameResampler, Box<[i16]>)>,
}

impl ActiveRecording {
    /// The room now mixes at `room_rate` (called at the switch, not per tick).
    pub(crate) fn room_rate_changed(&mut self, room_rate: u32) {
        self.convert = if room_rate == self.rate {
            None
        } else {
            match FrameResampler::new(room_rate, self.rate) {
                Ok(r) => Some((r, vec![0; self.rate as usize / 50].into())),
                Err(error) => {
                    tracing::warn!(%error, "recording: cannot convert the room's mix to the file's rate");
                    None
                }
            }
        };
    }

    /// Writes one tick's mix (at the room's rate).
    pub(crate) fn push(&mut self, mix: &[i16]) {
        match self.convert.as_mut() {
            Some((resampler, frame)) => {
                let n = resampler.process(mix, frame);
                self.recorder.push(&frame[..n]);
            }
            None => self.recorder.push(mix),
        }
    }
}

/// A participant recording or the per-role recording being written, fed by the tick: each
/// tick the room sets every channel of the frame ([`ActiveTrack::set_channel`]), then pushes
/// it ([`ActiveTrack::push`]).
pub(crate) struct ActiveTrack {
    pub(crate) id: RecordingId,
    pub(crate) source: TrackSource,
    pub(crate) recorder: Recorder,
    /// The file's rate: the room's when the recording started. As for the MPC recording's
    /// [`ActiveRecording`], a file cannot change rate midway, so after the room switches
    /// (a wideband member joined) each channel is converted.
    rate: u32,
    channels: usize,
    /// This tick's frame at the file's rate, channels interleaved.
    frame: Box<[i16]>,
    /// Set while the room mixes at another rate than the file's: one converter per channel
    /// (each keeps its channel's history) and their output frame, made at the switch.
    convert: Option<(Vec<FrameResampler>, Box<[i16]>)>,
}

impl ActiveTrack {
    /// The room now mixes at `room_rate` (called at the switch, not per tick).
    pub(crate) fn room_rate_changed(&mut self, room_rate: u32) {
        self.convert = if room_rate == self.rate {
            None
        } else {
            let built: Result<Vec<_>, _> = (0..self.channels)
                .map(|_| FrameResampler::new(room_rate, self.rate))
                .collect();
            match built {
                Ok(converters) => Some((converters, vec![0; self.rate as usize / 50].into())),
                Err(error) => {
                    tracing::warn!(%error, recording = %self.id, "recording: cannot convert the room's audio to the file's rate");
                    None
                }
            }
        };
    }

    /// Sets channel `c` of this tick's frame from `pcm` (one frame at the room's rate; None is
    /// silence). Silence still goes through the channel's converter, so that what it holds of
    /// the previous frames does not resurface later.
    pub(crate) fn set_channel(&mut self, c: usize, pcm: Option<&[i16]>) {
        if c >= self.channels {
            return;
        }
        let pcm = pcm.unwrap_or(&[]);
        let samples: &[i16] = match self.convert.as_mut() {
            Some((converters, out)) => {
                let n = converters[c].process(pcm, out);
                &out[..n]
            }
            None => pcm,
        };
        let len = self.frame.len() / self.channels;
        for i in 0..len {
            self.frame[i * self.channels + c] = samples.get(i).copied().unwrap_or(0);
        }
    }

    /// Hands this tick's frame, every channel set, to the writer.
    pub(crate) fn push(&mut self) {
        self.recorder.push(&self.frame);
    }
}

/// What the report of a finished recording needs: the recording as journaled.
struct Report {
    deps: Arc<RoomDeps>,
    recording: LiveRecording,
}

impl Report {
    fn send(self, result: Result<Finished, RecordError>) {
        let event = finished_event(
            &self.deps.recordings,
            self.recording,
            SystemTime::now(),
            result,
        );
        self.deps.emit(event);
    }
}

/// The report of a recording whose file is done (`MPCRecordingCompleted`, with the duration of
/// what the file holds) or could not be made (`MPCRecordingFailed`), for its recording
/// callback; also what a restart sends for a recording its writer could not finish.
pub fn finished_event(
    place: &RecordingPlace,
    recording: LiveRecording,
    ended: SystemTime,
    result: Result<Finished, RecordError>,
) -> RoomEvent {
    let LiveRecording {
        id,
        mpc_uuid,
        mpc_name,
        format,
        started,
        callback,
        kind,
        ..
    } = recording;
    let mut params = vec![
        ("RecordingUUID", id.to_string()),
        ("RecordingFormat", format.extension().to_string()),
        ("RecordingStartTime", plivo_timestamp(started)),
        ("RecordingEndTime", plivo_timestamp(ended)),
    ];
    // Participant recordings: the member, and which kind (an extension, telling the two
    // files of `both` apart); the per-role recording: its channels' roles, in order.
    let (member, [completed, failed]) = match &kind {
        RecordingKind::Mpc => (
            None,
            [
                EventName::MpcRecordingCompleted,
                EventName::MpcRecordingFailed,
            ],
        ),
        RecordingKind::Track(TrackSource::Member(member, track)) => {
            params.push(("RecordTrackType", track.as_str().to_string()));
            (
                Some(member.clone()),
                [
                    EventName::ParticipantRecordingCompleted,
                    EventName::ParticipantRecordingFailed,
                ],
            )
        }
        RecordingKind::Track(TrackSource::Roles) => {
            params.push(("RecordingChannels", role_channels()));
            (
                None,
                [
                    EventName::MpcRecordingCompleted,
                    EventName::MpcRecordingFailed,
                ],
            )
        }
    };
    let name = match result {
        Ok(finished) => {
            params.extend([
                ("RecordingDuration", finished.seconds().to_string()),
                ("RecordingURL", place.url(&id, format)),
                ("RecordingResourceURL", place.resource_url(&id)),
            ]);
            tracing::info!(mpc = %mpc_name, recording = %id, seconds = finished.seconds(), "recording complete");
            completed
        }
        Err(error) => {
            tracing::warn!(mpc = %mpc_name, recording = %id, %error, "recording failed");
            params.push(("RecordingFailureReason", error.to_string()));
            failed
        }
    };
    RoomEvent {
        name,
        mpc_uuid,
        mpc_name,
        member,
        params,
        callback,
    }
}

/// Starts writing `recording`; the report goes out from the writer thread when the file is
/// done, even if the room is gone by then. None when the writer could not start (reported).
pub(crate) fn start(
    deps: &Arc<RoomDeps>,
    mpc_uuid: &MpcUuid,
    mpc_name: &str,
    recording: &Recording,
    with_coach: bool,
    rate: u32,
    frame_len: usize,
) -> Option<ActiveRecording> {
    let live = LiveRecording {
        id: recording.id.clone(),
        mpc_uuid: mpc_uuid.clone(),
        mpc_name: mpc_name.to_string(),
        path: deps
            .recordings
            .path(&recording.id, format_of(recording.format)),
        format: format_of(recording.format),
        started: SystemTime::now(),
        callback: recording.callback.clone(),
        kind: RecordingKind::Mpc,
    };
    let recorder = start_file(deps, live, 1, rate, frame_len)?;
    Some(ActiveRecording {
        recorder,
        rate,
        convert: None,
        listener: if with_coach {
            ListenerClass::RecordingWithCoach
        } else {
            ListenerClass::Recording
        },
    })
}

/// Starts writing a participant recording or the per-role recording, as [`start`] does.
pub(crate) fn start_track(
    deps: &Arc<RoomDeps>,
    mpc_uuid: &MpcUuid,
    mpc_name: &str,
    track: &TrackRecording,
    rate: u32,
    frame_len: usize,
) -> Option<ActiveTrack> {
    let format = format_of(track.format);
    let channels = match &track.source {
        TrackSource::Member(_, kind) => kind.channels(),
        TrackSource::Roles => crate::state::ROLE_CHANNELS.len() as u16,
    };
    let live = LiveRecording {
        id: track.id.clone(),
        mpc_uuid: mpc_uuid.clone(),
        mpc_name: mpc_name.to_string(),
        path: deps.recordings.path(&track.id, format),
        format,
        started: SystemTime::now(),
        callback: track.callback.clone(),
        kind: RecordingKind::Track(track.source.clone()),
    };
    let recorder = start_file(deps, live, channels, rate, frame_len)?;
    Some(ActiveTrack {
        id: track.id.clone(),
        source: track.source.clone(),
        recorder,
        rate,
        channels: usize::from(channels),
        frame: vec![0; frame_len * usize::from(channels)].into(),
        convert: None,
    })
}

/// Journals `recording` and starts its writer.
fn start_file(
    deps: &Arc<RoomDeps>,
    recording: LiveRecording,
    channels: u16,
    rate: u32,
    frame_len: usize,
) -> Option<Recorder> {
    let (path, format) = (recording.path.clone(), recording.format);
    // Journaled before the writer exists, so that its end (which strikes it off) cannot
    // overtake it.
    if let Some(journal) = deps.journal() {
        journal.recording_started(recording.clone());
    }
    let report = Report {
        deps: deps.clone(),
        recording,
    };
    // The report is needed twice: by the writer when it finishes, or here if it never starts.
    let shared = Arc::new(std::sync::Mutex::new(Some(report)));
    let for_writer = shared.clone();
    let started =
        Recorder::start_channels(path, format, rate, channels, frame_len, move |result| {
            if let Some(report) = for_writer.lock().ok().and_then(|mut r| r.take()) {
                report.send(result);
            }
        });
    match started {
        Ok(recorder) => Some(recorder),
        Err(error) => {
            if let Some(report) = shared.lock().ok().and_then(|mut r| r.take()) {
                report.send(Err(error));
            }
            None
        }
    }
}
