//! `kill -9` in the middle of a recorded MPC, then a restart on the same storage: the
//! application still gets every participant's exit, the MPC's end with the documented cause
//! (`Server Restarted`, 5100) and the recording's completion with the duration of the data
//! on disk; the file is repaired; the ended MPCs stay listed by the API. The same for a
//! `<Record>` file (foreground, or the whole session): repaired, and its callbackUrl told.

use std::path::Path;
use std::time::Duration;

use huddle_testkit::{poll_until, tone_share, HttpStub, ServerProcess, StubRequest};
use serde_json::Value;

use super::{answered, server, Api};

const AGENT: f64 = 1010.0;
const CUSTOMER: f64 = 530.0;

fn route(stub: &HttpStub, format: &str) -> String {
    let attrs = format!(
        "record=\"true\" recordFileFormat=\"{format}\" recordingCallbackUrl=\"{}\" \
         statusCallbackUrl=\"{}\" statusCallbackEvents=\"mpc-state-changes,participant-state-changes\"",
        stub.url("/rec"),
        stub.url("/status"),
    );
    format!(
        "[[route]]\nuser = \"^(?P<role>agent|customer)-(?P<mpc>[a-z0-9]+)$\"\n\
         xml = '<Response><MultiPartyCall role=\"$role\" enterSound=\"none\" exitSound=\"none\" {attrs}>$mpc</MultiPartyCall></Response>'\n"
    )
}

/// Every callback (status and recording) about the MPC named `mpc`, in arrival order.
fn callbacks_of(stub: &HttpStub, mpc: &str) -> Vec<StubRequest> {
    stub.requests()
        .into_iter()
        .filter(|r| r.param("MPCName") == Some(mpc))
        .collect()
}

fn named<'a>(requests: &'a [StubRequest], name: &str) -> Vec<&'a StubRequest> {
    requests
        .iter()
        .filter(|r| r.param("EventName") == Some(name))
        .collect()
}

fn sequence(r: &StubRequest) -> u64 {
    r.param("SequenceNumber")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no SequenceNumber: {r:?}"))
}

/// Waits until the callbacks of `mpc` satisfy `holds`, at most `within`; panics with what came.
async fn wait_callbacks(
    stub: &HttpStub,
    mpc: &str,
    within: Duration,
    holds: impl Fn(&[StubRequest]) -> bool,
) -> Vec<StubRequest> {
    poll_until(within, || async {
        let got = callbacks_of(stub, mpc);
        holds(&got).then_some(got)
    })
    .await
    .unwrap_or_else(|| {
        let got: Vec<_> = callbacks_of(stub, mpc)
            .iter()
            .map(|r| r.param("EventName").unwrap_or("?").to_string())
            .collect();
        panic!("the callbacks of {mpc} did not arrive: {got:?}")
    })
}

/// Waits until `path` holds at least `bytes` bytes.
async fn wait_file(path: &Path, bytes: u64) {
    let grew = poll_until(Duration::from_secs(10), || async {
        std::fs::metadata(path)
            .ok()
            .filter(|m| m.len() >= bytes)
            .map(|_| ())
    })
    .await;
    assert!(
        grew.is_some(),
        "{} never reached {bytes} bytes",
        path.display()
    );
}

/// A recorded MPC `mpc` where an agent and a customer talk tones, killed with SIGKILL once its
/// recording holds `min_bytes`, then restarted. Returns the callbacks of `mpc` that arrived
/// before the kill.
async fn crash_mid_call(
    srv: &mut ServerProcess,
    stub: &HttpStub,
    mpc: &str,
    extension: &str,
    min_bytes: u64,
) -> Vec<StubRequest> {
    let (_agent, mut agent_rtp, agent_media) = answered(srv.sip, &format!("agent-{mpc}")).await;
    let (_customer, mut customer_rtp, customer_media) =
        answered(srv.sip, &format!("customer-{mpc}")).await;
    let started = wait_callbacks(stub, mpc, Duration::from_secs(10), |got| {
        named(got, "ParticipantJoin").len() == 2 && named(got, "MPCRecordingInitiated").len() == 1
    })
    .await;
    let id = named(&started, "MPCRecordingInitiated")[0]
        .param("RecordingUUID")
        .unwrap()
        .to_string();
    let file = srv.recordings_dir().join(format!("{id}.{extension}"));
    let talk = Duration::from_secs(8);
    let mut before = Vec::new();
    tokio::join!(
        agent_rtp.talk(agent_media, AGENT, talk),
        customer_rtp.talk(customer_media, CUSTOMER, talk),
        async {
            wait_file(&file, min_bytes).await;
            before = callbacks_of(stub, mpc);
            // Mid-call, mid-recording, both still talking.
            srv.kill_hard();
        },
    );
    srv.restart();
    before
}

/// The checks common to both formats, after the restart: both exits, the end with its cause,
/// the recording completed, numbers continuing after the ones sent before the kill, the MPC
/// ended in the API. Returns the Completed callback.
async fn assert_recovered(
    srv: &ServerProcess,
    stub: &HttpStub,
    mpc: &str,
    before: &[StubRequest],
) -> StubRequest {
    let got = wait_callbacks(stub, mpc, Duration::from_secs(20), |got| {
        named(got, "MPCEnd").len() == 1 && named(got, "MPCRecordingCompleted").len() == 1
    })
    .await;
    let joined: Vec<&str> = named(&got, "ParticipantJoin")
        .iter()
        .map(|r| r.param("MemberID").unwrap())
        .collect();
    let exits = named(&got, "ParticipantExit");
    let mut exited: Vec<&str> = exits.iter().map(|r| r.param("MemberID").unwrap()).collect();
    let mut expected = joined.clone();
    exited.sort();
    expected.sort();
    assert_eq!(exited, expected, "one exit for each member");
    for exit in &exits {
        assert_eq!(
            exit.param("ParticipantExitCause"),
            Some("Multiparty Call Ended")
        );
    }
    let end = named(&got, "MPCEnd")[0];
    assert_eq!(end.param("MPCTerminationCause"), Some("Server Restarted"));
    assert_eq!(end.param("MPCTerminationCauseCode"), Some("5100"));
    let duration: u64 = end.param("MPCDuration").unwrap().parse().unwrap();
    assert!((2..=30).contains(&duration), "MPCDuration {duration}");
    let completed = named(&got, "MPCRecordingCompleted")[0].clone();
    assert_eq!(
        completed.param("RecordingUUID"),
        named(&got, "MPCRecordingInitiated")[0].param("RecordingUUID")
    );

    // The numbers continue where the killed run stopped, in the order the room would have
    // sent them: the exits, the end, then the recording.
    let last_before = before.iter().map(sequence).max().expect("callbacks before");
    let mut after: Vec<u64> = exits.iter().map(|r| sequence(r)).collect();
    after.sort();
    after.extend([sequence(end), sequence(&completed)]);
    assert!(after[0] > last_before, "{after:?} after {last_before}");
    assert!(after.windows(2).all(|w| w[0] < w[1]), "{after:?}");

    let uuid = end.param("MPCUUID").unwrap();
    let api = Api::new(srv);
    let (status, mpc_object) = api.get(&format!("uuid_{uuid}/")).await;
    assert_eq!(status, 200, "{mpc_object}");
    assert_eq!(mpc_object["status"], "Ended");
    assert_eq!(mpc_object["termination_cause"], "Server Restarted");
    assert_eq!(mpc_object["termination_cause_code"], 5100);
    assert_eq!(mpc_object["recording"], "not-recording");
    completed
}

fn listed(list: &Value, uuid: &str) -> bool {
    list["objects"]
        .as_array()
        .is_some_and(|all| all.iter().any(|m| m["mpc_uuid"] == uuid))
}

fn u32_at(bytes: &[u8], at: usize) -> usize {
    u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize
}

#[tokio::test]
async fn a_recorded_mpc_killed_mid_call_is_ended_and_its_wav_repaired_after_the_restart() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let stub = HttpStub::start().await;
        stub.serve("/status", 200, "text/plain", "");
        stub.serve("/rec", 200, "text/plain", "");
        let mut srv = server(&route(&stub, "wav"), 40);

        // An MPC that ends normally before the crash: its history must survive the restart.
        let (_a, mut a_rtp, a_media) = answered(srv.sip, "agent-early").await;
        let (mut c, mut c_rtp, c_media) = answered(srv.sip, "customer-early").await;
        let short = Duration::from_millis(400);
        tokio::join!(
            a_rtp.talk(a_media, AGENT, short),
            c_rtp.talk(c_media, CUSTOMER, short)
        );
        c.bye().await;
        let early = wait_callbacks(&stub, "early", Duration::from_secs(10), |got| {
            !named(got, "MPCEnd").is_empty() && !named(got, "MPCRecordingCompleted").is_empty()
        })
        .await;
        let early_uuid = named(&early, "MPCEnd")[0]
            .param("MPCUUID")
            .unwrap()
            .to_string();

        // 2.5 s of 8 kHz 16-bit audio on disk, then kill -9.
        let before = crash_mid_call(&mut srv, &stub, "crash", "wav", 44 + 40_000).await;
        let completed = assert_recovered(&srv, &stub, "crash", &before).await;

        // The file: its header now counts exactly the data on disk, and the audio plays.
        let id = completed.param("RecordingUUID").unwrap();
        let path = srv.recordings_dir().join(format!("{id}.wav"));
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[0..4], b"RIFF");
        assert_eq!(u32_at(&bytes, 4), bytes.len() - 8, "RIFF size");
        let data = bytes
            .windows(4)
            .position(|w| w == b"data")
            .expect("a data chunk");
        assert_eq!(
            u32_at(&bytes, data + 4),
            bytes.len() - data - 8,
            "data size"
        );
        let mut reader = hound::WavReader::open(&path).expect("a valid WAV");
        assert_eq!(reader.spec().sample_rate, 8000);
        let pcm: Vec<i16> = reader
            .samples::<i16>()
            .collect::<Result<_, _>>()
            .expect("every sample readable");
        assert_eq!(pcm.len(), (bytes.len() - data - 8) / 2);
        assert!(pcm.len() >= 20_000, "{} samples", pcm.len());
        let duration: usize = completed
            .param("RecordingDuration")
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(duration, pcm.len() / 8000, "the duration of the data");
        let middle = &pcm[pcm.len() / 4..pcm.len() * 3 / 4];
        assert!(tone_share(middle, AGENT) > 0.05, "the agent is recorded");
        assert!(
            tone_share(middle, CUSTOMER) > 0.05,
            "the customer is recorded"
        );
        // The file is served at its RecordingURL like any other.
        let served = reqwest::Client::new()
            .get(completed.param("RecordingURL").unwrap())
            .basic_auth(super::ACCOUNT, Some("change-me"))
            .send()
            .await
            .unwrap();
        assert_eq!(served.status().as_u16(), 200);
        assert_eq!(served.bytes().await.unwrap().len(), bytes.len());

        // Both ended MPCs are listed, and still are after a clean stop and start: the history
        // lives in the database; nothing is ended twice.
        let crash_uuid = named(&callbacks_of(&stub, "crash"), "MPCEnd")[0]
            .param("MPCUUID")
            .unwrap()
            .to_string();
        let api = Api::new(&srv);
        let (_, list) = api.get("?status=ended").await;
        assert!(
            listed(&list, &early_uuid) && listed(&list, &crash_uuid),
            "{list}"
        );
        srv.sigterm();
        assert_eq!(srv.wait_exit(Duration::from_secs(15)), Some(0));
        srv.restart();
        let api = Api::new(&srv);
        let (_, list) = api.get("?status=ended").await;
        assert!(
            listed(&list, &early_uuid) && listed(&list, &crash_uuid),
            "{list}"
        );
        let (status, early_object) = api.get(&format!("uuid_{early_uuid}/")).await;
        assert_eq!(status, 200);
        assert_eq!(early_object["termination_cause_code"], 1010);
        assert_eq!(
            srv.log()
                .matches("the last run stopped with this MPC live")
                .count(),
            1,
            "recovered once"
        );
        assert_eq!(named(&callbacks_of(&stub, "crash"), "MPCEnd").len(), 1);
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn a_recorded_mpc_killed_mid_call_gets_its_mp3_cut_to_whole_frames() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let stub = HttpStub::start().await;
        stub.serve("/status", 200, "text/plain", "");
        stub.serve("/rec", 200, "text/plain", "");
        let mut srv = server(&route(&stub, "mp3"), 20);
        // 64 kb/s: 8 kB a second; 2 s on disk.
        let before = crash_mid_call(&mut srv, &stub, "mpthree", "mp3", 16_000).await;
        let completed = assert_recovered(&srv, &stub, "mpthree", &before).await;
        let id = completed.param("RecordingUUID").unwrap();
        let bytes = std::fs::read(srv.recordings_dir().join(format!("{id}.mp3"))).unwrap();
        // LAME at 64 kb/s and 8 kHz (MPEG 2.5 layer III) writes 576-byte frames of 72 ms,
        // never padded: whole frames only, each starting with a frame sync.
        const FRAME: usize = 576;
        assert!(bytes.len() >= 16_000, "{} bytes", bytes.len());
        assert_eq!(bytes.len() % FRAME, 0, "{} bytes", bytes.len());
        for (i, frame) in bytes.chunks(FRAME).enumerate() {
            assert_eq!(
                (frame[0], frame[1] & 0xE0),
                (0xFF, 0xE0),
                "frame {i} has no sync"
            );
        }
        let frames = bytes.len() / FRAME;
        let duration: usize = completed
            .param("RecordingDuration")
            .unwrap()
            .parse()
            .unwrap();
        let seconds = frames * 576 / 8000;
        assert!(
            duration.abs_diff(seconds) <= 1,
            "{duration} s reported, {seconds} s of frames"
        );
    })
    .await
    .expect("timed out");
}

/// Calls to `rec-wav` run a foreground `<Record>` (WAV); calls to `rec-mp3` record their
/// session (MP3) behind a long wait. Both report to `/record-cb`; the session's action is
/// `/record-started`.
fn record_routes(stub: &HttpStub) -> String {
    let cb = stub.url("/record-cb");
    let started = stub.url("/record-started");
    format!(
        "[[route]]\nuser = \"^rec-wav$\"\n\
         xml = '<Response><Record fileFormat=\"wav\" playBeep=\"false\" timeout=\"60\" maxLength=\"120\" callbackUrl=\"{cb}\"/></Response>'\n\
         [[route]]\nuser = \"^rec-mp3$\"\n\
         xml = '<Response><Record recordSession=\"true\" fileFormat=\"mp3\" action=\"{started}\" callbackUrl=\"{cb}\"/><Wait length=\"60\"/></Response>'\n"
    )
}

/// The one file with `extension` in `dir` once it holds `bytes` bytes.
async fn wait_any_file(dir: &Path, extension: &str, bytes: u64) -> std::path::PathBuf {
    poll_until(Duration::from_secs(10), || async {
        std::fs::read_dir(dir)
            .ok()?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| {
                p.extension().is_some_and(|e| e == extension)
                    && std::fs::metadata(p).is_ok_and(|m| m.len() >= bytes)
            })
    })
    .await
    .unwrap_or_else(|| panic!("no .{extension} file of {bytes} bytes in {}", dir.display()))
}

/// The callbackUrl report after the restart, checked against the file `path` it names.
async fn record_report(stub: &HttpStub, path: &Path) -> StubRequest {
    let got = stub
        .wait_for("/record-cb", 1, Duration::from_secs(20))
        .await;
    assert_eq!(got.len(), 1, "one report: {got:?}");
    let cb = got[0].clone();
    let id = path.file_stem().unwrap().to_str().unwrap();
    assert_eq!(cb.param("RecordingID"), Some(id));
    assert!(
        cb.param("RecordUrl")
            .is_some_and(|u| u.ends_with(path.file_name().unwrap().to_str().unwrap())),
        "{cb:?}"
    );
    assert_eq!(cb.param("CallStatus"), Some("completed"));
    assert_eq!(cb.param("Event"), Some("Record"));
    cb
}

#[tokio::test]
async fn a_record_verb_killed_mid_recording_gets_its_wav_repaired_and_reported() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let stub = HttpStub::start().await;
        stub.serve("/record-cb", 200, "text/plain", "");
        let mut srv = server(&record_routes(&stub), 20);
        let dir = srv.recordings_dir();
        let (_ua, mut rtp, media) = answered(srv.sip, "rec-wav").await;
        let mut path = std::path::PathBuf::new();
        tokio::join!(rtp.talk(media, CUSTOMER, Duration::from_secs(8)), async {
            // 2.5 s of 8 kHz 16-bit audio on disk, then kill -9 mid-recording.
            path = wait_any_file(&dir, "wav", 44 + 40_000).await;
            srv.kill_hard();
        });
        assert!(
            stub.requests_to("/record-cb").is_empty(),
            "nothing before the crash"
        );
        srv.restart();
        let cb = record_report(&stub, &path).await;
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(u32_at(&bytes, 4), bytes.len() - 8, "RIFF size");
        let data = bytes
            .windows(4)
            .position(|w| w == b"data")
            .expect("a data chunk");
        assert_eq!(
            u32_at(&bytes, data + 4),
            bytes.len() - data - 8,
            "data size"
        );
        let pcm: Vec<i16> = hound::WavReader::open(&path)
            .expect("a valid WAV")
            .samples::<i16>()
            .collect::<Result<_, _>>()
            .expect("every sample readable");
        assert!(pcm.len() >= 20_000, "{} samples", pcm.len());
        let ms: usize = cb.param("RecordingDurationMs").unwrap().parse().unwrap();
        assert_eq!(ms, pcm.len() / 8, "the duration of the data");
        assert!(
            tone_share(&pcm[pcm.len() / 4..], CUSTOMER) > 0.3,
            "the caller is recorded"
        );
        // Reported once: a clean restart does not repeat it.
        srv.sigterm();
        assert_eq!(srv.wait_exit(Duration::from_secs(15)), Some(0));
        srv.restart();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(stub.requests_to("/record-cb").len(), 1);
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn a_session_recording_killed_mid_call_gets_its_mp3_cut_to_whole_frames_and_reported() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let stub = HttpStub::start().await;
        stub.serve("/record-cb", 200, "text/plain", "");
        stub.serve("/record-started", 200, "text/plain", "");
        let mut srv = server(&record_routes(&stub), 20);
        let dir = srv.recordings_dir();
        let (_ua, mut rtp, media) = answered(srv.sip, "rec-mp3").await;
        let started = stub
            .wait_for("/record-started", 1, Duration::from_secs(5))
            .await;
        assert_eq!(started.len(), 1, "{}", srv.log());
        let id = started[0].param("RecordingID").unwrap().to_string();
        let path = dir.join(format!("{id}.mp3"));
        tokio::join!(rtp.talk(media, CUSTOMER, Duration::from_secs(8)), async {
            // 64 kb/s: 8 kB a second; 2 s on disk.
            wait_file(&path, 16_000).await;
            srv.kill_hard();
        });
        srv.restart();
        let cb = record_report(&stub, &path).await;
        let bytes = std::fs::read(&path).unwrap();
        const FRAME: usize = 576;
        assert!(bytes.len() >= 16_000, "{} bytes", bytes.len());
        assert_eq!(
            bytes.len() % FRAME,
            0,
            "whole frames only: {} bytes",
            bytes.len()
        );
        for (i, frame) in bytes.chunks(FRAME).enumerate() {
            assert_eq!(
                (frame[0], frame[1] & 0xE0),
                (0xFF, 0xE0),
                "frame {i} has no sync"
            );
        }
        let seconds = bytes.len() / FRAME * 576 / 8000;
        let duration: usize = cb.param("RecordingDuration").unwrap().parse().unwrap();
        assert!(
            duration.abs_diff(seconds) <= 1,
            "{duration} s reported, {seconds} s of frames"
        );
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn participant_recordings_killed_mid_call_are_finalized_and_reported_after_the_restart() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let stub = HttpStub::start().await;
        stub.serve("/status", 200, "text/plain", "");
        stub.serve("/rec", 200, "text/plain", "");
        stub.serve("/prec", 200, "text/plain", "");
        let mut srv = server(&route(&stub, "wav"), 30);
        let (_agent, mut agent_rtp, agent_media) = answered(srv.sip, "agent-ptrack").await;
        let (_customer, mut customer_rtp, customer_media) =
            answered(srv.sip, "customer-ptrack").await;
        let joined = wait_callbacks(&stub, "ptrack", Duration::from_secs(10), |got| {
            named(got, "ParticipantJoin").len() == 2
        })
        .await;
        let agent_id = named(&joined, "ParticipantJoin")
            .iter()
            .find(|r| r.param("ParticipantRole") == Some("Agent"))
            .and_then(|r| r.param("MemberID"))
            .expect("the agent's join")
            .to_string();
        let api = Api::new(&srv);
        let (status, started) = api
            .send(
                "POST",
                &format!("name_ptrack/Participant/{agent_id}/Record/"),
                Some(serde_json::json!({
                    "file_format": "wav",
                    "record_track_type": "both",
                    "recording_callback_url": stub.url("/prec"),
                })),
            )
            .await;
        assert_eq!(status, 200, "{started}");
        let ids: Vec<(String, String)> = started["recordings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["record_track_type"].as_str().unwrap().to_string(),
                    r["recording_id"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        assert_eq!(ids.len(), 2);
        let track_file = srv.recordings_dir().join(format!("{}.wav", ids[0].1));
        let talk = Duration::from_secs(8);
        tokio::join!(
            agent_rtp.talk(agent_media, AGENT, talk),
            customer_rtp.talk(customer_media, CUSTOMER, talk),
            async {
                // 2.5 s of the agent's track on disk, then kill -9 mid-call.
                wait_file(&track_file, 44 + 40_000).await;
                srv.kill_hard();
            },
        );
        srv.restart();

        let got = stub
            .wait_until("/prec", Duration::from_secs(20), |got| {
                named(got, "ParticipantRecordingCompleted").len() == 2
            })
            .await
            .unwrap_or_else(|| {
                panic!(
                    "no completion after the restart: {:?}",
                    stub.requests_to("/prec")
                        .iter()
                        .map(|r| r.param("EventName").unwrap_or("?").to_string())
                        .collect::<Vec<_>>()
                )
            });
        for (kind, id) in &ids {
            let done = named(&got, "ParticipantRecordingCompleted")
                .into_iter()
                .find(|r| r.param("RecordingUUID") == Some(id.as_str()))
                .unwrap_or_else(|| panic!("no completion of the {kind} recording"));
            assert_eq!(done.param("MemberID"), Some(agent_id.as_str()));
            assert_eq!(done.param("ParticipantRole"), Some("Agent"));
            assert_eq!(done.param("RecordTrackType"), Some(kind.as_str()));
            assert_eq!(done.param("MPCName"), Some("ptrack"));
            // The file: its header counts the data on disk, whole frames of every channel.
            let path = srv.recordings_dir().join(format!("{id}.wav"));
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(u32_at(&bytes, 4), bytes.len() - 8, "RIFF size");
            let data = bytes.windows(4).position(|w| w == b"data").unwrap();
            assert_eq!(
                u32_at(&bytes, data + 4),
                bytes.len() - data - 8,
                "data size"
            );
            let mut reader = hound::WavReader::open(&path).expect("a valid WAV");
            let channels = usize::from(reader.spec().channels);
            let pcm: Vec<i16> = reader
                .samples::<i16>()
                .collect::<Result<_, _>>()
                .expect("every sample readable");
            let frames = pcm.len() / channels;
            // The track reached 2.5 s on disk; the other file's writer may have had up to its
            // write buffer (8 KB) not yet on disk at the kill.
            assert!(frames >= 16_000, "{frames} frames");
            let duration: usize = done.param("RecordingDuration").unwrap().parse().unwrap();
            assert_eq!(duration, frames / 8000, "the duration of the data");
            let channel = |c: usize| -> Vec<i16> {
                let all: Vec<i16> = pcm.iter().skip(c).step_by(channels).copied().collect();
                all[all.len() / 4..all.len() * 3 / 4].to_vec()
            };
            let said = channel(0);
            assert!(tone_share(&said, AGENT) > 0.5, "{kind}: the agent's voice");
            assert!(
                tone_share(&said, CUSTOMER) < 0.005,
                "{kind}: only the agent's"
            );
            if kind == "all" {
                assert_eq!(channels, 2);
                assert!(
                    tone_share(&channel(1), CUSTOMER) > 0.5,
                    "what the agent heard"
                );
            } else {
                assert_eq!(channels, 1);
            }
        }
        // The MPC itself was ended and reported as before.
        wait_callbacks(&stub, "ptrack", Duration::from_secs(10), |got| {
            named(got, "MPCEnd").len() == 1 && named(got, "MPCRecordingCompleted").len() == 1
        })
        .await;
    })
    .await
    .expect("timed out");
}
