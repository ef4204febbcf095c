//! `<Record>` files in the crash journal, as MPC recordings are: a file is journaled before
//! its writer starts and struck off once its report is on its way (queued durably), so that
//! after a `kill -9` the next start repairs the file (`huddle_record::recover`) and sends the
//! `callbackUrl` report the call would have sent.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use huddle_events::CallParams;
use huddle_record::{Finished, Format};
use huddle_xml::UrlWithMethod;

/// One `<Record>` file being written, as journaled.
#[derive(Debug, Clone)]
pub struct CallRecording {
    /// RecordingID.
    pub id: String,
    /// The file.
    pub path: PathBuf,
    /// Its format.
    pub format: Format,
    /// RecordUrl: where the API serves it.
    pub url: String,
    /// When recording started.
    pub started: SystemTime,
    /// `callbackUrl` and its method: told when the file is complete.
    pub callback: Option<UrlWithMethod>,
    /// The recorded call.
    pub call: CallParams,
}

/// Where `<Record>` files are journaled. Calls must not block (they run on call tasks): an
/// implementation hands the record to the store's writer.
pub trait RecordJournal: Send + Sync {
    /// A file is about to be written.
    fn started(&self, recording: &CallRecording);
    /// The file is complete and its report queued (or there is none to send).
    fn finished(&self, id: &str);
}

impl CallRecording {
    /// What the action and `callbackUrl` are told of the file `finished`, which ended at
    /// `ended`.
    pub fn report(&self, finished: &Finished, ended: SystemTime) -> Vec<(String, String)> {
        let ms = |t: SystemTime| {
            t.duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis())
                .unwrap_or_default()
                .to_string()
        };
        let duration_ms = finished.samples * 1000 / u64::from(finished.rate.max(1));
        vec![
            ("RecordUrl".into(), self.url.clone()),
            ("RecordingID".into(), self.id.clone()),
            ("RecordingDuration".into(), finished.seconds().to_string()),
            ("RecordingDurationMs".into(), duration_ms.to_string()),
            ("RecordingStartMs".into(), ms(self.started)),
            ("RecordingEndMs".into(), ms(ended)),
        ]
    }

    /// The `callbackUrl` request's parameters: the call's, with `CallStatus` (`completed`
    /// once the call is over) and `Event=Record`, then the report.
    pub fn callback_params(
        &self,
        call_status: &str,
        finished: &Finished,
        ended: SystemTime,
    ) -> Vec<(String, String)> {
        let mut params = self.call.pairs(call_status, "Record");
        params.extend(self.report(finished, ended));
        params
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_report_counts_the_file_and_names_the_call() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let recording = CallRecording {
            id: "r-1".into(),
            path: "/tmp/r-1.wav".into(),
            format: Format::Wav,
            url: "http://h/v1/Account/A/Recording/r-1.wav".into(),
            started: t0,
            callback: None,
            call: CallParams {
                call_uuid: "c-1".into(),
                from: "100".into(),
                to: "200".into(),
                direction: "inbound",
            },
        };
        let finished = Finished {
            path: recording.path.clone(),
            samples: 12_000,
            rate: 8000,
            dropped_frames: 0,
        };
        let params = recording.callback_params("completed", &finished, t0 + Duration::from_secs(2));
        let get = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("CallUUID"), Some("c-1"));
        assert_eq!(get("CallStatus"), Some("completed"));
        assert_eq!(get("Event"), Some("Record"));
        assert_eq!(get("RecordingDurationMs"), Some("1500"));
        assert_eq!(get("RecordingStartMs"), Some("1700000000000"));
        assert_eq!(get("RecordingEndMs"), Some("1700000002000"));
        assert_eq!(get("RecordingID"), Some("r-1"));
    }
}
