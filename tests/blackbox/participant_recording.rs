//! Participant recording end to end (mpc-api.md §5.14–5.17, callbacks.md §4.2), over real SIP,
//! RTP and HTTP: each member's file holds its own tone and not the others', pause leaves a gap
//! and resume continues, mute is silence, the ParticipantRecording* callbacks are signed and
//! carry the member, `recordParticipantTrack` records each such member with the MPC
//! recording, bad requests get Plivo-shaped errors; and the per-role multichannel WAV
//! (`recordRoleChannels`, an extension) holds each role's tone on its own channel only.

use std::time::Duration;

use huddle_testkit::{tone_share, HttpStub, StubRequest};
use serde_json::{json, Value};

use super::recording::{download, event_names, route};
use super::{answered, server, Api};

const CUSTOMER: f64 = 530.0;
const AGENT: f64 = 1010.0;
const SUPERVISOR: f64 = 1690.0;
const AI_AGENT: f64 = 2170.0;

/// Waits (at most 10 s) until `path` got `count` callbacks named `name`; returns them all.
pub(super) async fn wait_events(
    stub: &HttpStub,
    path: &str,
    name: &str,
    count: usize,
) -> Vec<StubRequest> {
    stub.wait_until(path, Duration::from_secs(10), |got| {
        got.iter()
            .filter(|r| r.param("EventName") == Some(name))
            .count()
            >= count
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "not {count} {name} at {path}: {:?}",
            event_names(&stub.requests_to(path))
        )
    })
}

fn named<'a>(got: &'a [StubRequest], name: &str) -> Vec<&'a StubRequest> {
    got.iter()
        .filter(|r| r.param("EventName") == Some(name))
        .collect()
}

/// The one callback about recording `id` named `name`.
pub(super) fn of_recording<'a>(got: &'a [StubRequest], name: &str, id: &str) -> &'a StubRequest {
    let found: Vec<_> = named(got, name)
        .into_iter()
        .filter(|r| r.param("RecordingUUID") == Some(id))
        .collect();
    assert_eq!(found.len(), 1, "{name} of {id}: {:?}", event_names(got));
    found[0]
}

/// A served WAV: its channel count, rate and each channel's samples.
pub(super) async fn wav_channels(url: &str) -> (u16, u32, Vec<Vec<i16>>) {
    let (content_type, bytes) = download(url).await;
    assert_eq!(content_type, "audio/wav", "{url}");
    let mut reader = hound::WavReader::new(std::io::Cursor::new(bytes)).expect("a valid WAV");
    let spec = reader.spec();
    let all: Vec<i16> = reader
        .samples::<i16>()
        .collect::<Result<_, _>>()
        .expect("every sample readable");
    let n = usize::from(spec.channels);
    let channels = (0..n)
        .map(|c| all.iter().skip(c).step_by(n).copied().collect())
        .collect();
    (spec.channels, spec.sample_rate, channels)
}

/// The middle half of a channel: away from the joins, the first packets and the hang-ups.
fn middle(pcm: &[i16]) -> &[i16] {
    &pcm[pcm.len() / 4..pcm.len() * 3 / 4]
}

/// The member id of the one member of MPC `mpc` with role `role`.
pub(super) async fn member_of(api: &Api, mpc: &str, role: &str) -> String {
    let (status, list) = api.get(&format!("name_{mpc}/Participant/")).await;
    assert_eq!(status, 200, "{list}");
    list["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| {
            p["role"]
                .as_str()
                .is_some_and(|r| r.eq_ignore_ascii_case(role))
        })
        .and_then(|p| p["member_id"].as_str())
        .unwrap_or_else(|| panic!("no {role} in {list}"))
        .to_string()
}

/// Starts a participant recording; the 200 answer.
pub(super) async fn start(api: &Api, mpc: &str, member: &str, body: Value) -> Value {
    let (status, reply) = api
        .send(
            "POST",
            &format!("name_{mpc}/Participant/{member}/Record/"),
            Some(body),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["message"], format!("MPC: {mpc} record started"));
    assert!(reply["api_id"].is_string());
    reply
}

#[tokio::test]
async fn each_members_file_holds_its_own_voice_and_the_stop_reports_it_signed() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let stub = HttpStub::start().await;
        stub.serve("/prec", 200, "text/plain", "");
        let srv = server(&route("stayAlone=\"true\""), 30);
        let api = Api::new(&srv);
        let (mut agent, mut agent_rtp, agent_media) = answered(srv.sip, "agent-each").await;
        let (mut customer, mut customer_rtp, customer_media) =
            answered(srv.sip, "customer-each").await;
        let agent_id = member_of(&api, "each", "agent").await;
        let customer_id = member_of(&api, "each", "customer").await;
        let callback = stub.url("/prec");
        // The agent: both kinds (its track, and the two channels around it); the customer:
        // its track, with every key the Python SDK sends.
        let agent_rec = start(
            &api,
            "each",
            &agent_id,
            json!({"file_format": "WAV", "record_track_type": "both",
                   "recording_callback_url": callback, "transcript": false}),
        )
        .await;
        let customer_rec = start(
            &api,
            "each",
            &customer_id,
            json!({"file_format": "wav", "record_track_type": "participant",
                   "recording_callback_url": callback, "recording_callback_method": "POST"}),
        )
        .await;
        let kinds: Vec<&str> = agent_rec["recordings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["record_track_type"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["participant", "all"]);
        let agent_track = agent_rec["recording_id"].as_str().unwrap().to_string();
        let agent_around = agent_rec["recordings"][1]["recording_id"]
            .as_str()
            .unwrap()
            .to_string();
        let customer_track = customer_rec["recording_id"].as_str().unwrap().to_string();
        assert!(customer_rec["recording_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/Recording/{customer_track}.wav")));
        // Starting the same kind again is refused.
        let (status, reply) = api
            .send(
                "POST",
                &format!("name_each/Participant/{customer_id}/Record/"),
                Some(json!({"record_track_type": "participant"})),
            )
            .await;
        assert_eq!(status, 400, "{reply}");

        let talk = Duration::from_millis(2000);
        tokio::join!(
            agent_rtp.talk(agent_media, AGENT, talk),
            customer_rtp.talk(customer_media, CUSTOMER, talk),
        );
        // The customer's stops by the API (with the SDK's body: its default `all` stops the
        // participant track it has); the agent's end when the agent leaves.
        let (status, _) = api
            .send(
                "DELETE",
                &format!("name_each/Participant/{customer_id}/Record/"),
                Some(
                    json!({"participant_id": customer_id, "friendly_name": "each",
                            "record_track_type": "all"}),
                ),
            )
            .await;
        assert_eq!(status, 204);
        wait_events(&stub, "/prec", "ParticipantRecordingCompleted", 1).await;
        agent.bye().await;
        let got = wait_events(&stub, "/prec", "ParticipantRecordingCompleted", 3).await;
        customer.bye().await;

        let done = of_recording(&got, "ParticipantRecordingCompleted", &customer_track);
        assert_eq!(done.method, "POST");
        assert_eq!(done.param("MemberID"), Some(customer_id.as_str()));
        assert_eq!(done.param("MPCName"), Some("each"));
        assert!(done.param("MPCUUID").is_some_and(|u| u.len() == 36));
        assert_eq!(done.param("ParticipantRole"), Some("Customer"));
        assert_eq!(done.param("RecordingFormat"), Some("wav"));
        assert_eq!(done.param("RecordTrackType"), Some("participant"));
        assert!(done.param("RecordingStartTime").is_some());
        assert!(done.param("RecordingEndTime").is_some());
        assert!(done.param("SequenceNumber").is_some());
        let duration: u64 = done.param("RecordingDuration").unwrap().parse().unwrap();
        assert!((1..=3).contains(&duration), "{duration} s");
        assert_eq!(
            done.param("RecordingURL"),
            customer_rec["recording_url"].as_str()
        );
        assert!(done
            .param("RecordingResourceURL")
            .is_some_and(|u| u.ends_with(&format!("{customer_track}/"))));
        // Signed like every other callback.
        let nonce = done.header("X-Plivo-Signature-V3-Nonce").expect("a nonce");
        let expected = huddle_events::signature::v3_signature(
            "change-me",
            huddle_xml::HttpMethod::Post,
            &callback,
            &done.form,
            nonce,
        );
        assert_eq!(done.header("X-Plivo-Signature-V3"), Some(expected.as_str()));
        let initiated = of_recording(&got, "ParticipantRecordingInitiated", &customer_track);
        assert_eq!(initiated.param("MemberID"), Some(customer_id.as_str()));

        // The customer's file: the customer, not the agent.
        let (channels, rate, pcm) = wav_channels(done.param("RecordingURL").unwrap()).await;
        assert_eq!((channels, rate), (1, 8000));
        let said = middle(&pcm[0]);
        assert!(tone_share(said, CUSTOMER) > 0.5, "its own voice");
        assert!(tone_share(said, AGENT) < 0.005, "not the agent");

        // The agent's track: the agent, not the customer.
        let track = of_recording(&got, "ParticipantRecordingCompleted", &agent_track);
        assert_eq!(track.param("MemberID"), Some(agent_id.as_str()));
        assert_eq!(track.param("ParticipantRole"), Some("Agent"));
        let (channels, _, pcm) = wav_channels(track.param("RecordingURL").unwrap()).await;
        assert_eq!(channels, 1);
        let said = middle(&pcm[0]);
        assert!(tone_share(said, AGENT) > 0.5, "its own voice");
        assert!(tone_share(said, CUSTOMER) < 0.005, "not the customer");

        // Around the agent: what it says on the first channel, what it hears on the second.
        let around = of_recording(&got, "ParticipantRecordingCompleted", &agent_around);
        assert_eq!(around.param("RecordTrackType"), Some("all"));
        let (channels, _, pcm) = wav_channels(around.param("RecordingURL").unwrap()).await;
        assert_eq!(channels, 2);
        let (said, heard) = (middle(&pcm[0]), middle(&pcm[1]));
        assert!(tone_share(said, AGENT) > 0.5);
        assert!(tone_share(said, CUSTOMER) < 0.005);
        assert!(tone_share(heard, CUSTOMER) > 0.5, "it hears the customer");
        assert!(tone_share(heard, AGENT) < 0.005, "and not itself");
    })
    .await
    .expect("timed out");
}

/// Windows of 100 ms: how many carry `freq` (most of their energy), how many are silent.
fn tone_and_silent_windows(pcm: &[i16], freq: f64) -> (usize, usize) {
    let mut tone = 0;
    let mut silent = 0;
    for window in pcm.chunks_exact(800) {
        let energy: f64 = window.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>() / 800.0;
        if energy.sqrt() < 30.0 {
            silent += 1;
        } else if tone_share(window, freq) > 0.5 {
            tone += 1;
        }
    }
    (tone, silent)
}

#[tokio::test]
async fn pause_leaves_a_gap_resume_continues_and_a_muted_member_records_silence() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let stub = HttpStub::start().await;
        stub.serve("/prec", 200, "text/plain", "");
        let srv = server(&route("stayAlone=\"true\""), 20);
        let api = Api::new(&srv);
        let (_agent, mut rtp, media) = answered(srv.sip, "agent-gap").await;
        let agent_id = member_of(&api, "gap", "agent").await;
        let path = format!("name_gap/Participant/{agent_id}/Record/");
        let reply = start(
            &api,
            "gap",
            &agent_id,
            json!({"file_format": "wav", "record_track_type": "participant",
                   "recording_callback_url": stub.url("/prec")}),
        )
        .await;
        let id = reply["recording_id"].as_str().unwrap().to_string();
        let second = Duration::from_millis(1000);
        let sdk_body = || Some(json!({"participant_id": agent_id, "record_track_type": "all"}));
        // One second recorded, two paused, one recorded, one muted.
        rtp.talk(media, AGENT, second).await;
        assert_eq!(
            api.send("POST", &format!("{path}Pause/"), sdk_body())
                .await
                .0,
            204
        );
        let (status, reply) = api.send("POST", &format!("{path}Pause/"), sdk_body()).await;
        assert_eq!(status, 400, "already paused: {reply}");
        rtp.talk(media, AGENT, second * 2).await;
        assert_eq!(
            api.send("POST", &format!("{path}Resume/"), sdk_body())
                .await
                .0,
            204
        );
        rtp.talk(media, AGENT, second).await;
        let (status, _) = api
            .send(
                "POST",
                &format!("name_gap/Participant/{agent_id}/"),
                Some(json!({"mute": true})),
            )
            .await;
        assert_eq!(status, 200);
        rtp.talk(media, AGENT, second).await;
        assert_eq!(api.send("DELETE", &path, None).await.0, 204);
        assert_eq!(
            api.send("DELETE", &path, None).await.0,
            404,
            "stopped already"
        );

        let got = wait_events(&stub, "/prec", "ParticipantRecordingCompleted", 1).await;
        assert_eq!(
            event_names(&got),
            [
                "ParticipantRecordingInitiated",
                "ParticipantRecordingPaused",
                "ParticipantRecordingResumed",
                "ParticipantRecordingCompleted"
            ]
        );
        assert!(got
            .iter()
            .all(|r| r.param("RecordingUUID") == Some(id.as_str())));
        assert!(got
            .iter()
            .all(|r| r.param("MemberID") == Some(agent_id.as_str())));
        let done = got.last().unwrap();
        let (_, _, pcm) = wav_channels(done.param("RecordingURL").unwrap()).await;
        let seconds = pcm[0].len() as f64 / 8000.0;
        // Five seconds passed; the two paused are not in the file (the requests between the
        // talks add a little silence on a loaded machine).
        assert!((2.5..=4.2).contains(&seconds), "{seconds} s recorded");
        let (tone, silent) = tone_and_silent_windows(&pcm[0], AGENT);
        assert!((15..=22).contains(&tone), "{tone} windows of the voice");
        assert!(
            (7..=17).contains(&silent),
            "{silent} silent windows (muted)"
        );
        // The voice resumes where the pause ended: the second recorded second is voice too,
        // and the silence is the file's last part.
        let tail = &pcm[0][pcm[0].len() - 4000..];
        assert!(tail.iter().all(|s| s.abs() < 300), "muted at the end");
        let before_mute = &pcm[0][12_000..16_000];
        assert!(tone_share(before_mute, AGENT) > 0.5, "resumed voice");
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn record_participant_track_records_each_such_member_with_the_mpc_recording() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let stub = HttpStub::start().await;
        stub.serve("/rec", 200, "text/plain", "");
        let attrs = format!(
            "record=\"true\" recordFileFormat=\"wav\" recordParticipantTrack=\"true\" \
             recordingCallbackUrl=\"{}\" stayAlone=\"true\"",
            stub.url("/rec")
        );
        let srv = server(&route(&attrs), 30);
        let (mut agent, mut agent_rtp, agent_media) = answered(srv.sip, "agent-tracks").await;
        let (mut customer, mut customer_rtp, customer_media) =
            answered(srv.sip, "customer-tracks").await;
        let talk = Duration::from_millis(2000);
        tokio::join!(
            agent_rtp.talk(agent_media, AGENT, talk),
            customer_rtp.talk(customer_media, CUSTOMER, talk),
        );
        customer.bye().await;
        agent.bye().await;
        wait_events(&stub, "/rec", "ParticipantRecordingCompleted", 2).await;
        let got = wait_events(&stub, "/rec", "MPCRecordingCompleted", 1).await;
        assert_eq!(named(&got, "ParticipantRecordingInitiated").len(), 2);
        assert!(
            got.iter().all(|r| r.method == "GET"),
            "the XML's recording callback and method"
        );
        let mut roles = Vec::new();
        for done in named(&got, "ParticipantRecordingCompleted") {
            let role = done.param("ParticipantRole").unwrap().to_string();
            assert_eq!(done.param("RecordTrackType"), Some("participant"));
            assert_eq!(done.param("RecordingFormat"), Some("wav"));
            let (channels, _, pcm) = wav_channels(done.param("RecordingURL").unwrap()).await;
            assert_eq!(channels, 1);
            let (own, other) = if role == "Agent" {
                (AGENT, CUSTOMER)
            } else {
                (CUSTOMER, AGENT)
            };
            let said = middle(&pcm[0]);
            assert!(tone_share(said, own) > 0.5, "{role} holds its voice");
            assert!(tone_share(said, other) < 0.005, "{role} holds no other");
            roles.push(role);
        }
        roles.sort();
        assert_eq!(roles, ["Agent", "Customer"]);
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn the_role_channels_wav_holds_each_role_on_its_own_channel() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let stub = HttpStub::start().await;
        stub.serve("/rec", 200, "text/plain", "");
        let attrs = format!(
            "record=\"true\" recordFileFormat=\"mp3\" recordRoleChannels=\"true\" \
             coachMode=\"false\" recordingCallbackUrl=\"{}\" stayAlone=\"true\"",
            stub.url("/rec")
        );
        let route = format!(
            "[[route]]\nuser = \"^(?P<role>agent|customer|supervisor|ai-agent)-(?P<mpc>[a-z0-9]+)$\"\n\
             xml = '<Response><MultiPartyCall role=\"$role\" enterSound=\"none\" exitSound=\"none\" {attrs}>$mpc</MultiPartyCall></Response>'\n"
        );
        let srv = server(&route, 40);
        let mut calls = Vec::new();
        for (user, freq) in [
            ("customer-roles", CUSTOMER),
            ("agent-roles", AGENT),
            ("supervisor-roles", SUPERVISOR),
            ("ai-agent-roles", AI_AGENT),
        ] {
            let (ua, rtp, media) = answered(srv.sip, user).await;
            calls.push((ua, rtp, media, freq));
        }
        let talk = Duration::from_millis(2000);
        let talking = calls
            .iter_mut()
            .map(|(_, rtp, media, freq)| rtp.talk(*media, *freq, talk));
        futures_util::future::join_all(talking).await;
        for (ua, ..) in &mut calls {
            ua.bye().await;
        }
        let got = wait_events(&stub, "/rec", "MPCRecordingCompleted", 2).await;
        let completed = named(&got, "MPCRecordingCompleted");
        let roles = completed
            .iter()
            .find(|r| r.param("RecordingChannels").is_some())
            .expect("the per-role recording's Completed");
        let mpc = completed
            .iter()
            .find(|r| r.param("RecordingChannels").is_none())
            .expect("the MPC recording's Completed, as before");
        assert_eq!(mpc.param("RecordingFormat"), Some("mp3"));
        assert_eq!(
            roles.param("RecordingChannels"),
            Some("customer,agent,supervisor,ai-agent")
        );
        assert_eq!(roles.param("RecordingFormat"), Some("wav"), "always WAV");
        assert_ne!(roles.param("RecordingUUID"), mpc.param("RecordingUUID"));
        let (channels, rate, pcm) = wav_channels(roles.param("RecordingURL").unwrap()).await;
        assert_eq!((channels, rate), (4, 8000));
        let tones = [CUSTOMER, AGENT, SUPERVISOR, AI_AGENT];
        for (c, own) in tones.iter().enumerate() {
            let channel = middle(&pcm[c]);
            assert!(
                tone_share(channel, *own) > 0.5,
                "channel {c} holds its role's tone"
            );
            for other in tones.iter().filter(|f| *f != own) {
                assert!(
                    tone_share(channel, *other) < 0.005,
                    "channel {c} holds no {other} Hz"
                );
            }
        }
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn bad_participant_recording_requests_get_plivo_shaped_errors() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let srv = server(&route("stayAlone=\"true\""), 20);
        let api = Api::new(&srv);
        let (_agent, _, _) = answered(srv.sip, "agent-bad").await;
        let agent_id = member_of(&api, "bad", "agent").await;
        let record = format!("name_bad/Participant/{agent_id}/Record/");
        let cases: Vec<(&str, String, Option<Value>, u16)> = vec![
            (
                "POST",
                "name_bad/Participant/99999/Record/".into(),
                Some(json!({})),
                404,
            ),
            (
                "POST",
                "name_nope/Participant/1/Record/".into(),
                Some(json!({})),
                404,
            ),
            (
                "POST",
                "name_bad/Participant/all/Record/".into(),
                Some(json!({})),
                400,
            ),
            (
                "POST",
                "name_bad/Participant/1,2/Record/".into(),
                Some(json!({})),
                400,
            ),
            (
                "POST",
                record.clone(),
                Some(json!({"record_track_type": "stereo"})),
                400,
            ),
            (
                "POST",
                record.clone(),
                Some(json!({"record_track_type": 3})),
                400,
            ),
            (
                "POST",
                record.clone(),
                Some(json!({"file_format": "ogg"})),
                400,
            ),
            (
                "POST",
                record.clone(),
                Some(json!({"recording_callback_url": "ftp://x/y"})),
                400,
            ),
            (
                "POST",
                record.clone(),
                Some(json!({"recording_callback_method": "PUT"})),
                400,
            ),
            ("DELETE", record.clone(), None, 404),
            ("POST", format!("{record}Pause/"), None, 404),
            ("POST", format!("{record}Resume/"), None, 404),
            ("POST", format!("{record}Rewind/"), None, 404),
            ("PUT", record.clone(), None, 405),
        ];
        for (method, path, body, expected) in cases {
            let (status, reply) = api.send(method, &path, body).await;
            assert_eq!(status, expected, "{method} {path}: {reply}");
            assert!(reply["error"].is_string(), "{method} {path}: {reply}");
            assert!(reply["api_id"].is_string(), "{method} {path}: {reply}");
        }
        // Without the credentials, nothing is said about the member.
        let status = reqwest::Client::new()
            .post(format!(
                "http://{}/v1/Account/{}/MultiPartyCall/{record}",
                srv.http,
                super::ACCOUNT
            ))
            .basic_auth(super::ACCOUNT, Some("wrong"))
            .json(&json!({}))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), 401);
        // Nothing above started anything; a good request still works, once: the default
        // kind (`all`, two channels) in the default format (MP3, stereo).
        let stub = HttpStub::start().await;
        stub.serve("/prec", 200, "text/plain", "");
        let body = json!({"recording_callback_url": stub.url("/prec")});
        let (status, reply) = api.send("POST", &record, Some(body.clone())).await;
        assert_eq!(status, 200, "{reply}");
        assert!(
            reply["recording_url"].as_str().unwrap().ends_with(".mp3"),
            "{reply}"
        );
        assert_eq!(reply["recordings"][0]["record_track_type"], "all");
        let (status, reply) = api.send("POST", &record, Some(body)).await;
        assert_eq!(status, 400, "already recording: {reply}");
        assert_eq!(
            api.send("POST", &format!("{record}Resume/"), None).await.0,
            400
        );
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(api.send("DELETE", &record, None).await.0, 204);
        let got = wait_events(&stub, "/prec", "ParticipantRecordingCompleted", 1).await;
        let done = named(&got, "ParticipantRecordingCompleted")[0];
        assert_eq!(done.param("RecordingFormat"), Some("mp3"));
        assert_eq!(done.param("RecordTrackType"), Some("all"));
        assert_eq!(done.method, "POST", "the API's default method");
        let (content_type, bytes) = download(done.param("RecordingURL").unwrap()).await;
        assert_eq!(content_type, "audio/mpeg");
        assert!(bytes.len() > 4_000, "{} bytes", bytes.len());
        assert_eq!(
            (bytes[0], bytes[1] & 0xE0),
            (0xFF, 0xE0),
            "an MP3 frame first"
        );
        assert_ne!(bytes[3] >> 6, 3, "a stereo stream, not mono");
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn record_participant_track_by_the_api_records_the_member_it_adds() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let stub = HttpStub::start().await;
        stub.serve("/rec", 200, "text/plain", "");
        stub.serve_xml("/answer", "<Response><Wait length=\"60\"/></Response>");
        let extra = format!(
            "{}[[route]]\nuser = \"^waiting$\"\nanswer_url = \"{}\"\n",
            route("stayAlone=\"true\""),
            stub.url("/answer")
        );
        let srv = server(&extra, 30);
        let api = Api::new(&srv);
        let (mut caller, mut caller_rtp, caller_media) = answered(srv.sip, "waiting").await;
        let asked = stub.wait_for("/answer", 1, Duration::from_secs(5)).await;
        let call_uuid = asked[0].param("CallUUID").expect("CallUUID").to_string();
        // The customer creates the MPC by the API: recorded, with its own track.
        let (status, reply) = api
            .send(
                "POST",
                "name_apitrack/Participant/",
                Some(json!({
                    "role": "customer", "call_uuid": call_uuid, "enter_sound": "none",
                    "exit_sound": "none", "stay_alone": true, "record": true,
                    "record_participant_track": "true", "record_file_format": "wav",
                    "recording_callback_url": stub.url("/rec"),
                    "recording_callback_method": "POST",
                })),
            )
            .await;
        assert_eq!(status, 201, "{reply}");
        api.wait_json("name_apitrack/Participant/", Duration::from_secs(5), |v| {
            v["meta"]["count"] == 1
        })
        .await;
        // The agent joins by XML without the attribute: no track of its own.
        let (mut agent, mut agent_rtp, agent_media) = answered(srv.sip, "agent-apitrack").await;
        let talk = Duration::from_millis(2000);
        tokio::join!(
            agent_rtp.talk(agent_media, AGENT, talk),
            caller_rtp.talk(caller_media, CUSTOMER, talk),
        );
        caller.bye().await;
        agent.bye().await;
        wait_events(&stub, "/rec", "MPCRecordingCompleted", 1).await;
        wait_events(&stub, "/rec", "ParticipantRecordingCompleted", 1).await;
        // Every file was finalized as the MPC ended: a track of the agent's would be here by
        // now.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let got = stub.requests_to("/rec");
        let tracks = named(&got, "ParticipantRecordingCompleted");
        assert_eq!(tracks.len(), 1, "{:?}", event_names(&got));
        let done = tracks[0];
        assert_eq!(done.param("ParticipantRole"), Some("Customer"));
        assert_eq!(done.param("ParticipantCallUUID"), Some(call_uuid.as_str()));
        assert_eq!(done.method, "POST");
        let (channels, _, pcm) = wav_channels(done.param("RecordingURL").unwrap()).await;
        assert_eq!(channels, 1);
        let said = middle(&pcm[0]);
        assert!(tone_share(said, CUSTOMER) > 0.5, "the customer's voice");
        assert!(tone_share(said, AGENT) < 0.005, "not the agent's");
    })
    .await
    .expect("timed out");
}
