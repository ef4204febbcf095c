//! MPC recording end to end: started by XML or the API, paused and resumed, finalized with the
//! MPC, reported by recording callbacks, served over HTTP, and checked by ear: the file holds
//! the customer and the agent, and no coaching unless recordCoachVoice.

use std::time::Duration;

use huddle_testkit::{tone_share, HttpStub, StubRequest};
use serde_json::{json, Value};

use super::{answered, server};

const CUSTOMER: f64 = 530.0;
const AGENT: f64 = 1010.0;
const COACH: f64 = 1690.0;
const ACCOUNT: &str = "MAHUDDLEDEFAULT00000";

/// A route joining `agent-<mpc>`, `customer-<mpc>` and `supervisor-<mpc>` to MPC `<mpc>` with
/// `attrs` on the verb.
pub(crate) fn route(attrs: &str) -> String {
    format!(
        "[[route]]\nuser = \"^(?P<role>agent|customer|supervisor)-(?P<mpc>[a-z0-9]+)$\"\n\
         xml = '<Response><MultiPartyCall role=\"$role\" enterSound=\"none\" exitSound=\"none\" {attrs}>$mpc</MultiPartyCall></Response>'\n"
    )
}

/// The EventName of each request.
pub(crate) fn event_names(requests: &[StubRequest]) -> Vec<String> {
    requests
        .iter()
        .map(|r| r.param("EventName").unwrap_or("?").to_string())
        .collect()
}

/// Waits (at most 5 s) until the receiver got an event named `name`.
async fn wait_event(stub: &HttpStub, path: &str, name: &str) -> Vec<StubRequest> {
    stub.wait_until(path, Duration::from_secs(5), |got| {
        got.iter().any(|r| r.param("EventName") == Some(name))
    })
    .await
    .unwrap_or_else(|| {
        panic!(
            "no {name} at {path}: {:?}",
            event_names(&stub.requests_to(path))
        )
    })
}

/// Fetches a recording with the account's basic auth (recordings are served only with it).
pub(crate) async fn download(url: &str) -> (String, Vec<u8>) {
    let response = reqwest::Client::new()
        .get(url)
        .basic_auth(ACCOUNT, Some("change-me"))
        .send()
        .await
        .expect("the recording URL answers");
    assert_eq!(response.status().as_u16(), 200, "{url}");
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    (content_type, response.bytes().await.unwrap().to_vec())
}

/// A WAV-recorded MPC `mpc` (with `extra` attributes) where an agent, a customer and a
/// coaching supervisor talk; returns the recording callbacks and the middle of the file.
async fn record_three(
    stub: &HttpStub,
    mpc: &str,
    extra: &str,
) -> (huddle_testkit::ServerProcess, Vec<StubRequest>, Vec<i16>) {
    let attrs = format!(
        "record=\"true\" recordFileFormat=\"wav\" recordingCallbackUrl=\"{}\" stayAlone=\"true\" {extra}",
        stub.url("/rec")
    );
    let srv = server(&route(&attrs), 30);
    let (mut agent, mut agent_rtp, agent_media) = answered(srv.sip, &format!("agent-{mpc}")).await;
    let (mut customer, mut customer_rtp, customer_media) =
        answered(srv.sip, &format!("customer-{mpc}")).await;
    let (mut coach, mut coach_rtp, coach_media) =
        answered(srv.sip, &format!("supervisor-{mpc}")).await;
    let talk = Duration::from_millis(1500);
    tokio::join!(
        agent_rtp.talk(agent_media, AGENT, talk),
        customer_rtp.talk(customer_media, CUSTOMER, talk),
        coach_rtp.talk(coach_media, COACH, talk),
    );
    customer.bye().await;
    coach.bye().await;
    agent.bye().await;
    let got = wait_event(stub, "/rec", "MPCRecordingCompleted").await;
    let url = got
        .last()
        .and_then(|r| r.param("RecordingURL"))
        .expect("a RecordingURL")
        .to_string();
    let (content_type, bytes) = download(&url).await;
    assert_eq!(content_type, "audio/wav");
    let mut reader = hound::WavReader::new(std::io::Cursor::new(bytes)).expect("a valid WAV");
    assert_eq!(reader.spec().sample_rate, 8000);
    let pcm: Vec<i16> = reader.samples::<i16>().map(|s| s.unwrap()).collect();
    let middle = pcm[pcm.len() / 4..pcm.len() * 3 / 4].to_vec();
    (srv, got, middle)
}

#[tokio::test]
async fn an_mpc_recorded_by_xml_holds_customer_and_agent_but_not_the_coach() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let stub = HttpStub::start().await;
        stub.serve("/rec", 200, "text/plain", "");
        let (srv, got, middle) = record_three(&stub, "rec", "").await;
        assert_eq!(
            event_names(&got),
            ["MPCRecordingInitiated", "MPCRecordingCompleted"]
        );
        assert!(
            got.iter().all(|r| r.method == "GET"),
            "XML's default method is GET"
        );
        let done = &got[1];
        assert_eq!(done.param("RecordingFormat"), Some("wav"));
        assert_eq!(done.param("MPCName"), Some("rec"));
        let id = done.param("RecordingUUID").unwrap();
        assert_eq!(got[0].param("RecordingUUID"), Some(id));
        let duration: u64 = done.param("RecordingDuration").unwrap().parse().unwrap();
        assert!((1..=3).contains(&duration), "{duration} s");
        assert_eq!(
            done.param("RecordingURL").unwrap(),
            format!(
                "http://{}/v1/Account/{ACCOUNT}/Recording/{id}.wav",
                srv.http
            )
        );
        assert!(
            tone_share(&middle, CUSTOMER) > 0.05,
            "the customer is recorded"
        );
        assert!(tone_share(&middle, AGENT) > 0.05, "the agent is recorded");
        assert!(
            tone_share(&middle, COACH) < 0.005,
            "coaching stays out without recordCoachVoice"
        );

        // Nothing else can be fetched from there, even with the credentials.
        let base = format!("http://{}/v1/Account/{ACCOUNT}/Recording/", srv.http);
        for name in ["../huddle.toml", "nope.wav", &format!("{id}.exe")] {
            let status = reqwest::Client::new()
                .get(format!("{base}{name}"))
                .basic_auth(ACCOUNT, Some("change-me"))
                .send()
                .await
                .unwrap()
                .status();
            assert_eq!(status.as_u16(), 404, "{name}");
        }
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn record_coach_voice_puts_the_coaching_into_the_recording() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let stub = HttpStub::start().await;
        stub.serve("/rec", 200, "text/plain", "");
        let (_srv, _, middle) = record_three(&stub, "coached", "recordCoachVoice=\"true\"").await;
        assert!(tone_share(&middle, COACH) > 0.05, "the coach is recorded");
        assert!(tone_share(&middle, CUSTOMER) > 0.05 && tone_share(&middle, AGENT) > 0.05);
    })
    .await
    .expect("timed out");
}

/// A REST client authenticated like Plivo's SDKs.
async fn call_api(
    srv_http: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let url = format!("http://{srv_http}/v1/Account/{ACCOUNT}/MultiPartyCall/{path}");
    let mut request = reqwest::Client::new()
        .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url)
        .basic_auth(ACCOUNT, Some("change-me"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_api_starts_pauses_resumes_and_stops_an_mp3_recording() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let stub = HttpStub::start().await;
        stub.serve("/rec", 200, "text/plain", "");
        let srv = server(&route("stayAlone=\"true\""), 20);
        let (_agent, mut rtp, media) = answered(srv.sip, "agent-api").await;
        let api = |method: &'static str, path: &'static str, body: Option<Value>| {
            call_api(srv.http, method, path, body)
        };
        assert_eq!(
            api("DELETE", "name_api/Record/", None).await.0,
            404,
            "nothing to stop"
        );
        let (status, started) = api(
            "POST",
            "name_api/Record/",
            Some(json!({"file_format": "mp3", "recording_callback_url": stub.url("/rec")})),
        )
        .await;
        assert_eq!(status, 200, "{started}");
        assert_eq!(started["message"], "MPC: api record started");
        let id = started["recording_id"].as_str().unwrap().to_string();
        assert!(started["recording_url"]
            .as_str()
            .unwrap()
            .ends_with(&format!("{id}.mp3")));
        assert_eq!(
            api("GET", "name_api/", None).await.1["recording"],
            "recording"
        );
        let (status, body) = api("POST", "name_api/Record/", Some(json!({}))).await;
        assert_eq!(status, 400, "already recording: {body}");

        rtp.talk(media, AGENT, Duration::from_millis(600)).await;
        assert_eq!(api("POST", "name_api/Record/Pause/", None).await.0, 204);
        assert_eq!(api("GET", "name_api/", None).await.1["recording"], "paused");
        assert_eq!(api("POST", "name_api/Record/Pause/", None).await.0, 400);
        rtp.talk(media, AGENT, Duration::from_millis(600)).await;
        assert_eq!(api("POST", "name_api/Record/Resume/", None).await.0, 204);
        rtp.talk(media, AGENT, Duration::from_millis(600)).await;
        assert_eq!(api("DELETE", "name_api/Record/", None).await.0, 204);
        assert_eq!(
            api("GET", "name_api/", None).await.1["recording"],
            "not-recording"
        );

        let got = wait_event(&stub, "/rec", "MPCRecordingCompleted").await;
        assert_eq!(
            event_names(&got),
            [
                "MPCRecordingInitiated",
                "MPCRecordingPaused",
                "MPCRecordingResumed",
                "MPCRecordingCompleted"
            ]
        );
        assert!(
            got.iter().all(|r| r.method == "POST"),
            "the API's default method is POST"
        );
        let done = got.last().unwrap();
        assert_eq!(done.param("RecordingUUID"), Some(id.as_str()));
        let duration: u64 = done.param("RecordingDuration").unwrap().parse().unwrap();
        assert!(
            duration <= 1,
            "the paused part is not recorded: {duration} s"
        );
        let (content_type, bytes) = download(done.param("RecordingURL").unwrap()).await;
        assert_eq!(content_type, "audio/mpeg");
        assert!(bytes.len() > 2_000, "{} bytes of MP3", bytes.len());
    })
    .await
    .expect("timed out");
}
