//! The room's end of its recording: the file's place, the recorder the tick feeds, and the
//! Completed or Failed callback once the writer is done.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use huddle_media::resample::FrameResampler;
use huddle_mixer::ListenerClass;
use huddle_record::{Finished, Format, RecordError, Recorder};
use huddle_roomport::{MpcUuid, RecordingId};
use huddle_xml::{RecordFormat, UrlWithMethod};

use crate::clock::plivo_timestamp;
use crate::events::{EventName, RoomEvent};
use crate::journal::LiveRecording;
use crate::registry::RoomDeps;
use crate::state::Recording;

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

/// What the report of a finished recording needs.
struct Report {
    deps: Arc<RoomDeps>,
    mpc_uuid: MpcUuid,
    mpc_name: String,
    id: RecordingId,
    format: Format,
    callback: Option<UrlWithMethod>,
    started: SystemTime,
}

impl Report {
    fn send(self, result: Result<Finished, RecordError>) {
        let recording = LiveRecording {
            path: self.deps.recordings.path(&self.id, self.format),
            id: self.id,
            mpc_uuid: self.mpc_uuid,
            mpc_name: self.mpc_name,
            format: self.format,
            started: self.started,
            callback: self.callback,
        };
        let event = finished_event(&self.deps.recordings, recording, SystemTime::now(), result);
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
        ..
    } = recording;
    let mut params = vec![
        ("RecordingUUID", id.to_string()),
        ("RecordingFormat", format.extension().to_string()),
        ("RecordingStartTime", plivo_timestamp(started)),
        ("RecordingEndTime", plivo_timestamp(ended)),
    ];
    let name = match result {
        Ok(finished) => {
            params.extend([
                ("RecordingDuration", finished.seconds().to_string()),
                ("RecordingURL", place.url(&id, format)),
                ("RecordingResourceURL", place.resource_url(&id)),
            ]);
            tracing::info!(mpc = %mpc_name, recording = %id, seconds = finished.seconds(), "recording complete");
            EventName::MpcRecordingCompleted
        }
        Err(error) => {
            tracing::warn!(mpc = %mpc_name, recording = %id, %error, "recording failed");
            params.push(("RecordingFailureReason", error.to_string()));
            EventName::MpcRecordingFailed
        }
    };
    RoomEvent {
        name,
        mpc_uuid,
        mpc_name,
        member: None,
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
    let format = format_of(recording.format);
    let report = Report {
        deps: deps.clone(),
        mpc_uuid: mpc_uuid.clone(),
        mpc_name: mpc_name.to_string(),
        id: recording.id.clone(),
        format,
        callback: recording.callback.clone(),
        started: SystemTime::now(),
    };
    let path = deps.recordings.path(&recording.id, format);
    // Journaled before the writer exists, so that its end (which strikes it off) cannot
    // overtake it.
    if let Some(journal) = deps.journal() {
        journal.recording_started(LiveRecording {
            id: recording.id.clone(),
            mpc_uuid: mpc_uuid.clone(),
            mpc_name: mpc_name.to_string(),
            path: path.clone(),
            format,
            started: report.started,
            callback: recording.callback.clone(),
        });
    }
    // The report is needed twice: by the writer when it finishes, or here if it never starts.
    let shared = Arc::new(std::sync::Mutex::new(Some(report)));
    let for_writer = shared.clone();
    let started = Recorder::start(path, format, rate, frame_len, move |result| {
        if let Some(report) = for_writer.lock().ok().and_then(|mut r| r.take()) {
            report.send(result);
        }
    });
    match started {
        Ok(recorder) => Some(ActiveRecording {
            recorder,
            rate,
            convert: None,
            listener: if with_coach {
                ListenerClass::RecordingWithCoach
            } else {
                ListenerClass::Recording
            },
        }),
        Err(error) => {
            if let Some(report) = shared.lock().ok().and_then(|mut r| r.take()) {
                report.send(Err(error));
            }
            None
        }
    }
}
