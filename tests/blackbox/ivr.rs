//! The IVR verbs over real SIP, RTP and HTTP: a GetDigits menu choosing the MPC, GetInput with
//! DTMF, the DTMF verb heard by the phone, Record with its file and callbacks, and Conference
//! on the room engine.

use std::net::SocketAddr;
use std::time::Duration;

use huddle_events::signature::{self, V3, V3_NONCE};
use huddle_testkit::{detect, tone_share, wav_tone, HttpStub, Msg, RtpPeer, SipUa, StubRequest};
use huddle_xml::HttpMethod;
use serde_json::Value;

use super::{answered, server, Api, ACCOUNT};

/// `user` runs the stub's `/answer`; agents and customers reach an MPC by name as usual.
fn routes(stub: &HttpStub, user: &str) -> String {
    format!(
        "[[route]]\nuser = \"^{user}$\"\nanswer_url = \"{}\"\nanswer_method = \"POST\"\n\
         [[route]]\nuser = \"^(?P<role>agent|customer)-(?P<mpc>[a-z0-9-]+)$\"\n\
         xml = '<Response><MultiPartyCall role=\"$role\" enterSound=\"none\" exitSound=\"none\">$mpc</MultiPartyCall></Response>'\n",
        stub.url("/answer")
    )
}

/// The request as a Plivo SDK's validator sees it, checked against the account's token.
fn assert_signed(r: &StubRequest, url: &str) {
    let nonce = r.header(V3_NONCE).expect("a V3 nonce");
    let expected = signature::v3_signature("change-me", HttpMethod::Post, url, &r.form, nonce);
    assert_eq!(r.header(V3), Some(expected.as_str()), "{r:?}");
}

/// Listens (sending silence, as a phone does) for `ms`.
async fn listen(rtp: &mut RtpPeer, media: SocketAddr, ms: u64) -> Vec<i16> {
    rtp.talk(media, 0.0, Duration::from_millis(ms)).await
}

/// Listens until the server's BYE (answered), at most `limit`; the audio and whether BYE came.
async fn listen_until_bye(
    ua: &mut SipUa,
    rtp: &mut RtpPeer,
    media: SocketAddr,
    limit: Duration,
) -> (Vec<i16>, bool) {
    let started = std::time::Instant::now();
    let mut audio = Vec::new();
    while started.elapsed() < limit {
        audio.extend(listen(rtp, media, 100).await);
        if let Some(msg) = ua.recv(Duration::from_millis(1)).await {
            if msg.start.starts_with("BYE ") {
                ua.reply_ok(&msg).await;
                return (audio, true);
            }
        }
    }
    (audio, false)
}

/// The call uuid of the `n`th answer_url request.
fn call_uuid(stub: &HttpStub, n: usize) -> String {
    stub.requests_to("/answer")[n]
        .param("CallUUID")
        .expect("CallUUID")
        .to_string()
}

/// The call uuids of an MPC's participants.
async fn members(api: &Api, mpc: &str) -> Vec<String> {
    let (status, list) = api.get(&format!("name_{mpc}/Participant/")).await;
    if status != 200 {
        return Vec::new();
    }
    list["objects"]
        .as_array()
        .map(|objects| {
            objects
                .iter()
                .filter_map(|p| p["call_uuid"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

async fn wait_member(api: &Api, mpc: &str, uuid: &str) -> Value {
    api.wait_json(
        &format!("name_{mpc}/Participant/"),
        Duration::from_secs(10),
        |list| {
            list["objects"]
                .as_array()
                .is_some_and(|o| o.iter().any(|p| p["call_uuid"] == uuid))
        },
    )
    .await
}

const PROMPT_HZ: f64 = 600.0;
const AGENT_HZ: f64 = 700.0;

#[tokio::test]
async fn get_digits_menu_chooses_the_mpc_by_digit_and_falls_through_on_timeout() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let stub = HttpStub::start().await;
        stub.serve(
            "/prompt.wav",
            200,
            "audio/wav",
            wav_tone(PROMPT_HZ, 4.0, 8000),
        );
        let menu = stub.url("/menu");
        stub.serve_xml(
            "/answer",
            &format!(
                r#"<Response>
  <GetDigits action="{menu}" method="POST" numDigits="1" timeout="2" validDigits="12" retries="1">
    <Play>{prompt}</Play>
  </GetDigits>
  <Redirect method="GET">{fell}</Redirect>
</Response>"#,
                prompt = stub.url("/prompt.wav"),
                fell = stub.url("/fell-through"),
            ),
        );
        let room = |name: &str| {
            format!(
                "<Response><MultiPartyCall role=\"customer\" enterSound=\"none\" exitSound=\"none\">{name}</MultiPartyCall></Response>"
            )
        };
        stub.serve_xml_by(
            "/menu",
            "Digits",
            &[("1", room("support-1")), ("2", room("sales-2"))],
        );
        stub.serve_xml("/fell-through", "<Response><Hangup/></Response>");
        let srv = server(&routes(&stub, "menu"), 80);
        let api = Api::new(&srv);

        // Caller A hears the prompt, presses 2 in the middle of it and lands in sales-2.
        let (mut a_ua, mut a_rtp, a_media) = answered(srv.sip, "menu").await;
        let heard = listen(&mut a_rtp, a_media, 1000).await;
        assert!(
            detect(&heard[heard.len() / 2..], PROMPT_HZ),
            "the menu prompt plays\n{}",
            srv.log()
        );
        a_rtp.send_dtmf(a_media, 2).await;
        let requests = stub.wait_for("/menu", 1, Duration::from_secs(5)).await;
        assert_eq!(requests.len(), 1, "the action is requested\n{}", srv.log());
        let a_uuid = call_uuid(&stub, 0);
        let r = &requests[0];
        assert_eq!(r.method, "POST");
        assert_eq!(r.param("Digits"), Some("2"));
        assert_eq!(r.param("CallUUID"), Some(a_uuid.as_str()));
        assert_eq!(r.param("CallStatus"), Some("in-progress"));
        assert_signed(r, &menu);
        wait_member(&api, "sales-2", &a_uuid).await;

        // The prompt stopped at the digit; an agent in sales-2 is heard, the prompt is not.
        let (_agent_ua, mut agent_rtp, agent_media) = answered(srv.sip, "agent-sales-2").await;
        let (a_heard, _) = tokio::join!(
            a_rtp.talk(a_media, 0.0, Duration::from_millis(1500)),
            agent_rtp.talk(agent_media, AGENT_HZ, Duration::from_millis(1500)),
        );
        let tail = &a_heard[a_heard.len() / 2..];
        assert!(
            tone_share(tail, AGENT_HZ) > 0.05,
            "the caller hears the sales agent\n{}",
            srv.log()
        );
        assert!(
            tone_share(tail, PROMPT_HZ) < 0.01,
            "the prompt was cut by the digit"
        );

        // Caller B presses 1 and lands in support-1, not in sales-2.
        let (_b_ua, mut b_rtp, b_media) = answered(srv.sip, "menu").await;
        listen(&mut b_rtp, b_media, 300).await;
        b_rtp.send_dtmf(b_media, 1).await;
        let b_uuid = call_uuid(&stub, 1);
        wait_member(&api, "support-1", &b_uuid).await;
        assert!(!members(&api, "sales-2").await.contains(&b_uuid));
        let menu_requests = stub.requests_to("/menu");
        assert_eq!(menu_requests.len(), 2);
        assert_eq!(menu_requests[1].param("Digits"), Some("1"));

        // Caller C presses nothing: after the prompt and the 2 s timeout the next verb runs,
        // and the action hears nothing of C.
        let (mut c_ua, mut c_rtp, c_media) = answered(srv.sip, "menu").await;
        let (_, bye) =
            listen_until_bye(&mut c_ua, &mut c_rtp, c_media, Duration::from_secs(15)).await;
        assert!(bye, "the fall-through document hangs up\n{}", srv.log());
        let c_uuid = call_uuid(&stub, 2);
        let fell = stub.requests_to("/fell-through");
        assert_eq!(fell.len(), 1);
        assert_eq!(fell[0].param("CallUUID"), Some(c_uuid.as_str()));
        assert_eq!(stub.requests_to("/menu").len(), 2, "no action without digits");
        let _ = a_ua.bye().await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn get_digits_retries_after_invalid_digits_and_collects_until_the_finish_key() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let stub = HttpStub::start().await;
        stub.serve("/invalid.wav", 200, "audio/wav", wav_tone(900.0, 0.6, 8000));
        stub.serve_xml(
            "/answer",
            &format!(
                r##"<Response><GetDigits action="{action}" timeout="5" digitTimeout="3" finishOnKey="#" retries="2" validDigits="0123456789" invalidDigitsSound="{sound}"><Wait length="1"/></GetDigits></Response>"##,
                action = stub.url("/account"),
                sound = stub.url("/invalid.wav"),
            ),
        );
        stub.serve_xml("/account", "<Response><Hangup/></Response>");
        let srv = server(&routes(&stub, "acct"), 40);
        let (mut ua, mut rtp, media) = answered(srv.sip, "acct").await;
        listen(&mut rtp, media, 1200).await;
        // '*' is not valid: the invalid-digits sound plays and the second attempt starts.
        rtp.send_dtmf(media, 10).await;
        let heard = listen(&mut rtp, media, 700).await;
        assert!(
            detect(&heard, 900.0),
            "the invalid-digits sound plays\n{}",
            srv.log()
        );
        listen(&mut rtp, media, 1300).await;
        for key in [4, 0, 7, 11] {
            rtp.send_dtmf(media, key).await;
        }
        let requests = stub.wait_for("/account", 1, Duration::from_secs(5)).await;
        assert_eq!(requests.len(), 1, "{}", srv.log());
        assert_eq!(requests[0].param("Digits"), Some("407"));
        let (_, bye) = listen_until_bye(&mut ua, &mut rtp, media, Duration::from_secs(5)).await;
        assert!(bye, "the action's document runs");
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn dtmf_verb_sends_rfc_4733_digits_synchronously_and_asynchronously() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let stub = HttpStub::start().await;
        stub.serve_xml(
            "/answer",
            r#"<Response><DTMF async="false">12w#</DTMF><DTMF>9A</DTMF><Wait length="2"/><Hangup/></Response>"#,
        );
        let srv = server(&routes(&stub, "dtmf"), 20);
        let (mut ua, mut rtp, media) = answered(srv.sip, "dtmf").await;
        let (_, bye) = listen_until_bye(&mut ua, &mut rtp, media, Duration::from_secs(15)).await;
        assert!(bye, "{}", srv.log());
        // 1, 2, # (11), then 9 and A (12) while the Wait runs.
        assert_eq!(rtp.dtmf_received, vec![1, 2, 11, 9, 12], "{}", srv.log());
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn get_input_collects_dtmf_and_refuses_speech() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let stub = HttpStub::start().await;
        let action = stub.url("/input");
        stub.serve_xml(
            "/answer",
            &format!(
                r##"<Response><GetInput action="{action}" inputType="dtmf" digitEndTimeout="3" executionTimeout="10" numDigits="5" finishOnKey="#"><Speak>Enter your account number.</Speak></GetInput><Hangup/></Response>"##
            ),
        );
        stub.serve_xml("/input", "<Response><Hangup/></Response>");
        let srv = server(&routes(&stub, "input"), 20);
        let (mut ua, mut rtp, media) = answered(srv.sip, "input").await;
        listen(&mut rtp, media, 500).await;
        for key in [4, 2, 11] {
            rtp.send_dtmf(media, key).await;
        }
        let requests = stub.wait_for("/input", 1, Duration::from_secs(5)).await;
        assert_eq!(requests.len(), 1, "{}", srv.log());
        assert_eq!(requests[0].param("Digits"), Some("42"));
        assert_eq!(requests[0].param("InputType"), Some("dtmf"));
        assert_signed(&requests[0], &action);
        let (_, bye) = listen_until_bye(&mut ua, &mut rtp, media, Duration::from_secs(5)).await;
        assert!(bye);

        // Speech input: the document is refused with an error naming the reason, and the
        // call is never answered.
        stub.serve_xml(
            "/answer",
            &format!(r#"<Response><GetInput action="{action}" inputType="speech"/></Response>"#),
        );
        let mut ua = SipUa::udp(srv.sip).await;
        let rtp = RtpPeer::bind().await;
        let response: Msg = ua
            .invite("input", &SipUa::sdp(rtp.port(), &[0, 101]))
            .await
            .expect("a final response");
        assert!(response.status() >= 400, "{response:?}");
        let log = srv.log();
        assert!(log.contains("speech recogniser"), "{log}");
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn record_writes_the_callers_voice_and_reports_it() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let stub = HttpStub::start().await;
        let action = stub.url("/recorded");
        stub.serve_xml(
            "/answer",
            &format!(
                r##"<Response><Record action="{action}" fileFormat="wav" maxLength="30" timeout="10" finishOnKey="#" callbackUrl="{cb}"/></Response>"##,
                cb = stub.url("/record-callback"),
            ),
        );
        stub.serve_xml("/recorded", "<Response><Hangup/></Response>");
        stub.serve("/record-callback", 200, "text/plain", "");
        let srv = server(&routes(&stub, "rec"), 20);
        let (mut ua, mut rtp, media) = answered(srv.sip, "rec").await;
        let beep = listen(&mut rtp, media, 400).await;
        assert!(detect(&beep, 1000.0), "the beep plays\n{}", srv.log());
        rtp.talk(media, 850.0, Duration::from_millis(2000)).await;
        rtp.send_dtmf(media, 11).await;

        let requests = stub.wait_for("/recorded", 1, Duration::from_secs(5)).await;
        assert_eq!(requests.len(), 1, "{}", srv.log());
        let r = &requests[0];
        assert_signed(r, &action);
        let duration_ms: u64 = r.param("RecordingDurationMs").unwrap().parse().unwrap();
        assert!(
            (1800..=3500).contains(&duration_ms),
            "about 2 s recorded: {duration_ms} ms"
        );
        let secs: u64 = r.param("RecordingDuration").unwrap().parse().unwrap();
        assert_eq!(secs, duration_ms / 1000);
        let start: u64 = r.param("RecordingStartMs").unwrap().parse().unwrap();
        let end: u64 = r.param("RecordingEndMs").unwrap().parse().unwrap();
        assert!(end > start);
        let id = r.param("RecordingID").unwrap();
        let url = r.param("RecordUrl").unwrap();
        assert_eq!(
            url,
            format!("http://{}/v1/Account/{ACCOUNT}/Recording/{id}.wav", srv.http)
        );
        let (_, bye) = listen_until_bye(&mut ua, &mut rtp, media, Duration::from_secs(5)).await;
        assert!(bye, "the action's document runs");

        let callbacks = stub
            .wait_for("/record-callback", 1, Duration::from_secs(5))
            .await;
        assert_eq!(callbacks.len(), 1);
        assert_eq!(callbacks[0].param("RecordUrl"), Some(url));

        // The file: only with the API's credentials, and it holds the caller's tone.
        let http = reqwest::Client::new();
        let anonymous = http.get(url).send().await.unwrap();
        assert_eq!(anonymous.status(), 401);
        let file = http
            .get(url)
            .basic_auth(ACCOUNT, Some("change-me"))
            .send()
            .await
            .unwrap();
        assert_eq!(file.status(), 200);
        let bytes = file.bytes().await.unwrap();
        let reader = hound::WavReader::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
        assert_eq!(reader.spec().sample_rate, 8000);
        let pcm: Vec<i16> = reader.into_samples::<i16>().map(Result::unwrap).collect();
        assert!(
            (14_000..=28_000).contains(&pcm.len()),
            "{} samples",
            pcm.len()
        );
        let middle = &pcm[pcm.len() / 4..pcm.len() * 3 / 4];
        assert!(detect(middle, 850.0), "the caller's tone is in the file");
        assert!(!detect(middle, 1000.0), "the beep is not recorded");
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn record_ends_on_silence_and_max_length() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let stub = HttpStub::start().await;
        stub.serve_xml(
            "/answer",
            &format!(
                r#"<Response><Record action="{a}" fileFormat="mp3" timeout="1" playBeep="false" redirect="false"/><Record action="{b}" fileFormat="wav" maxLength="2" timeout="60" playBeep="false"/></Response>"#,
                a = stub.url("/silence"),
                b = stub.url("/max-length"),
            ),
        );
        stub.serve("/silence", 200, "text/plain", "");
        stub.serve_xml("/max-length", "<Response><Hangup/></Response>");
        let srv = server(&routes(&stub, "rec"), 20);
        let (_ua, mut rtp, media) = answered(srv.sip, "rec").await;
        // A second of tone, then silence: the first Record ends about a second later; its
        // action is only told (redirect=false) and the second Record starts.
        rtp.talk(media, 850.0, Duration::from_millis(1000)).await;
        rtp.talk(media, 0.0, Duration::from_millis(1600)).await;
        let silence = stub.wait_for("/silence", 1, Duration::from_secs(3)).await;
        assert_eq!(silence.len(), 1, "{}", srv.log());
        let ms: u64 = silence[0]
            .param("RecordingDurationMs")
            .unwrap()
            .parse()
            .unwrap();
        assert!((1700..=2800).contains(&ms), "{ms} ms");
        assert!(silence[0].param("RecordUrl").unwrap().ends_with(".mp3"));
        // The second one talks on and is cut at maxLength.
        rtp.talk(media, 850.0, Duration::from_millis(3000)).await;
        let max = stub.wait_for("/max-length", 1, Duration::from_secs(3)).await;
        assert_eq!(max.len(), 1, "{}", srv.log());
        let ms: u64 = max[0]
            .param("RecordingDurationMs")
            .unwrap()
            .parse()
            .unwrap();
        assert!((1800..=2200).contains(&ms), "{ms} ms");
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn conference_members_hear_each_other_in_one_room() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let stub = HttpStub::start().await;
        stub.serve_xml(
            "/answer",
            r#"<Response><Conference startConferenceOnEnter="true" maxMembers="5">town-hall</Conference></Response>"#,
        );
        let srv = server(&routes(&stub, "conf"), 40);
        let api = Api::new(&srv);
        let (_a_ua, mut a_rtp, a_media) = answered(srv.sip, "conf").await;
        let (_b_ua, mut b_rtp, b_media) = answered(srv.sip, "conf").await;
        let (a_heard, b_heard) = tokio::join!(
            a_rtp.talk(a_media, 500.0, Duration::from_millis(1500)),
            b_rtp.talk(b_media, 1100.0, Duration::from_millis(1500)),
        );
        let a_tail = &a_heard[a_heard.len() / 2..];
        let b_tail = &b_heard[b_heard.len() / 2..];
        assert!(tone_share(a_tail, 1100.0) > 0.05, "A hears B\n{}", srv.log());
        assert!(tone_share(b_tail, 500.0) > 0.05, "B hears A");
        assert!(tone_share(a_tail, 500.0) < 0.01, "nobody hears themselves");
        let (status, list) = api.get("name_town-hall/Participant/").await;
        assert_eq!(status, 200, "{list}");
        assert_eq!(list["meta"]["count"], 2);
        assert!(list["objects"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["role"] == "customer"));
        let (_, mpc) = api.get("name_town-hall/").await;
        assert_eq!(mpc["max_participants"], 5, "{mpc}");
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn a_broken_action_ends_the_call_with_the_redirect_cause() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let stub = HttpStub::start().await;
        stub.serve_xml(
            "/answer",
            &format!(
                r#"<Response><GetDigits action="{garbage}" numDigits="1"/><GetDigits action="{down}" numDigits="1"/></Response>"#,
                garbage = stub.url("/garbage"),
                down = stub.url("/down"),
            ),
        );
        // Not XML at all: the call ends as for an invalid Redirect document.
        stub.serve("/garbage", 200, "text/html", "<html><body>oops</body></html>");
        let srv = server(&routes(&stub, "broken"), 20);
        let (mut ua, mut rtp, media) = answered(srv.sip, "broken").await;
        listen(&mut rtp, media, 300).await;
        rtp.send_dtmf(media, 3).await;
        let (_, bye) = listen_until_bye(&mut ua, &mut rtp, media, Duration::from_secs(5)).await;
        assert!(bye, "{}", srv.log());
        assert_eq!(stub.requests_to("/garbage").len(), 1);
        assert!(stub.requests_to("/down").is_empty());
        assert!(srv.log().contains("Invalid Redirect XML"), "{}", srv.log());

        // An action that answers 500: the call ends as for an unreachable Redirect URL.
        stub.serve_xml(
            "/answer",
            &format!(
                r#"<Response><GetDigits action="{down}" numDigits="1"/></Response>"#,
                down = stub.url("/down"),
            ),
        );
        stub.serve("/down", 500, "text/plain", "");
        let (mut ua, mut rtp, media) = answered(srv.sip, "broken").await;
        listen(&mut rtp, media, 300).await;
        rtp.send_dtmf(media, 3).await;
        let (_, bye) = listen_until_bye(&mut ua, &mut rtp, media, Duration::from_secs(10)).await;
        assert!(bye, "{}", srv.log());
        assert!(!stub.requests_to("/down").is_empty());
        assert!(srv.log().contains("Error Reaching Redirect URL"), "{}", srv.log());
    })
    .await
    .expect("test timed out");
}

#[test]
fn check_xml_names_the_element_and_attribute_of_each_ivr_problem() {
    let dir = std::env::temp_dir().join(format!("huddle-ivr-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("ivr.xml");
    std::fs::write(
        &path,
        r#"<Response>
  <GetDigits action="http://a/menu" numDigits="0" finishOnKey="12"><Dial>1</Dial></GetDigits>
  <GetInput action="http://a/in" inputType="speech"/>
  <DTMF>12q</DTMF>
  <Record fileFormat="ogg" startOnDialAnswer="true"/>
  <Conference maxMembers="50">room</Conference>
</Response>
"#,
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_huddle"))
        .arg("check-xml")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "line 2, column 37: <GetDigits> attribute `numDigits` = \"0\": out of range (allowed: 1 to 99)",
        "<GetDigits> attribute `finishOnKey` = \"12\"",
        "<Dial> is not allowed inside <GetDigits>",
        "<GetInput> attribute `inputType` = \"speech\": speech input is not supported",
        "<DTMF> text \"12q\": 'q' is not a digit or pause",
        "<Record> attribute `fileFormat` = \"ogg\"",
        "line 5, column 28: <Record> attribute `startOnDialAnswer` = \"true\": startOnDialAnswer=\"true\" is not supported",
        "<Conference> attribute `maxMembers` = \"50\": out of range (allowed: 2 to 10)",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
}

#[tokio::test]
async fn a_bidirectional_stream_hears_the_caller_and_is_heard_until_it_closes() {
    use super::ai_stream::{play_tone, AiService, Cmd};
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    tokio::time::timeout(Duration::from_secs(60), async {
        let svc = AiService::start().await;
        let stub = HttpStub::start().await;
        stub.serve("/stream-status", 200, "text/plain", "");
        stub.serve_xml(
            "/answer",
            &format!(
                r#"<Response><Stream bidirectional="true" keepCallAlive="true" contentType="audio/x-l16;rate=16000" statusCallbackUrl="{cb}">{ws}</Stream><Hangup/></Response>"#,
                cb = stub.url("/stream-status"),
                ws = svc.url("/agent"),
            ),
        );
        let srv = server(&routes(&stub, "bot"), 20);
        let (mut ua, mut rtp, media) = answered(srv.sip, "bot").await;
        let start = svc.started(0).await;
        assert_eq!(
            start["start"]["callId"],
            call_uuid(&stub, 0).as_str(),
            "{start}"
        );
        // The caller's voice reaches the service; the service's voice reaches the caller.
        play_tone(&svc, 0, "audio/x-l16", 16000, 1830.0, 2.0);
        let heard = rtp.talk(media, 430.0, Duration::from_millis(1500)).await;
        assert!(
            tone_share(&heard[heard.len() / 3..], 1830.0) > 0.05,
            "the caller hears the service\n{}",
            srv.log()
        );
        let service_heard = svc.with(0, |c| c.heard());
        assert!(
            tone_share(&service_heard[service_heard.len() / 3..], 430.0) > 0.05,
            "the service hears the caller"
        );
        // keepCallAlive: the next verb waits for the stream; a normal close ends it and the
        // call goes on with <Hangup/>.
        assert!(ua.recv(Duration::from_millis(200)).await.is_none());
        svc.send(0, Cmd::Close(CloseCode::Normal));
        let (_, bye) = listen_until_bye(&mut ua, &mut rtp, media, Duration::from_secs(5)).await;
        assert!(bye, "{}", srv.log());
        let status = stub
            .wait_until("/stream-status", Duration::from_secs(5), |r| {
                r.iter().any(|r| r.param("Event") == Some("StopStream"))
            })
            .await;
        assert!(status.is_some(), "{:?}", stub.requests_to("/stream-status"));
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn a_background_stream_sends_the_outbound_track_while_the_verbs_run() {
    use super::ai_stream::AiService;
    tokio::time::timeout(Duration::from_secs(60), async {
        let svc = AiService::start().await;
        let stub = HttpStub::start().await;
        stub.serve("/tone.wav", 200, "audio/wav", wav_tone(600.0, 1.5, 8000));
        stub.serve_xml(
            "/answer",
            &format!(
                r#"<Response><Stream audioTrack="outbound">{ws}</Stream><Play>{tone}</Play><Hangup/></Response>"#,
                ws = svc.url("/listen"),
                tone = stub.url("/tone.wav"),
            ),
        );
        let srv = server(&routes(&stub, "monitor"), 20);
        let (mut ua, mut rtp, media) = answered(srv.sip, "monitor").await;
        let (heard, bye) = listen_until_bye(&mut ua, &mut rtp, media, Duration::from_secs(10)).await;
        assert!(bye, "{}", srv.log());
        assert!(detect(&heard, 600.0), "the Play ran beside the stream");
        let start = svc.started(0).await;
        assert_eq!(start["start"]["tracks"], serde_json::json!(["outbound"]), "{start}");
        let tracks: Vec<Value> = svc.with(0, |c| {
            c.events("media")
                .into_iter()
                .map(|(_, m)| m["media"]["track"].clone())
                .collect()
        });
        assert!(
            !tracks.is_empty() && tracks.iter().all(|t| t == "outbound"),
            "{tracks:?}"
        );
        let service_heard = svc.with(0, |c| c.heard());
        assert!(
            tone_share(&service_heard, 600.0) > 0.2,
            "the service hears what the caller is played\n{}",
            srv.log()
        );
        // The call hung up: the stream is closed.
        svc.wait(Duration::from_secs(5), |c| c[0].ended.then_some(()))
            .await;
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn get_digits_without_redirect_notifies_the_action_and_keeps_digits_out_of_the_log() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let stub = HttpStub::start().await;
        let action = stub.url("/pin");
        stub.serve_xml(
            "/answer",
            &format!(
                r#"<Response><GetDigits action="{action}" redirect="false" log="false" playBeep="true" timeout="5"/><Hangup/></Response>"#
            ),
        );
        // Whatever the action answers is not run: redirect="false".
        stub.serve_xml("/pin", "<Response><Wait length=\"30\"/></Response>");
        let srv = server(&routes(&stub, "pin"), 20);
        let (mut ua, mut rtp, media) = answered(srv.sip, "pin").await;
        let beep = listen(&mut rtp, media, 400).await;
        assert!(detect(&beep, 1000.0), "playBeep\n{}", srv.log());
        for key in [8, 6, 11] {
            rtp.send_dtmf(media, key).await;
        }
        let (_, bye) = listen_until_bye(&mut ua, &mut rtp, media, Duration::from_secs(5)).await;
        assert!(bye, "the call goes on with the next verb\n{}", srv.log());
        let requests = stub.wait_for("/pin", 1, Duration::from_secs(5)).await;
        assert_eq!(requests.len(), 1);
        assert_eq!(requests[0].param("Digits"), Some("86"));
        assert_signed(&requests[0], &action);
        let log = srv.log();
        assert!(log.contains("(not logged)"), "{log}");
        assert!(
            !log.contains("digit=") && !log.contains("digits="),
            "the digits stay out of the log:\n{log}"
        );
    })
    .await
    .expect("test timed out");
}

#[tokio::test]
async fn a_caller_hanging_up_mid_record_still_gets_a_complete_file_reported() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let stub = HttpStub::start().await;
        stub.serve_xml(
            "/answer",
            &format!(
                r#"<Response><Record action="{action}" fileFormat="wav" playBeep="false" callbackUrl="{cb}"/></Response>"#,
                action = stub.url("/recorded"),
                cb = stub.url("/record-callback"),
            ),
        );
        stub.serve("/record-callback", 200, "text/plain", "");
        let srv = server(&routes(&stub, "rec"), 20);
        let (mut ua, mut rtp, media) = answered(srv.sip, "rec").await;
        rtp.talk(media, 850.0, Duration::from_millis(1500)).await;
        let _ = ua.bye().await;
        let callbacks = stub
            .wait_for("/record-callback", 1, Duration::from_secs(5))
            .await;
        assert_eq!(callbacks.len(), 1, "{}", srv.log());
        let cb = &callbacks[0];
        assert_eq!(cb.param("CallStatus"), Some("completed"));
        let ms: u64 = cb.param("RecordingDurationMs").unwrap().parse().unwrap();
        assert!((1200..=2000).contains(&ms), "{ms} ms");
        assert!(stub.requests_to("/recorded").is_empty(), "no action after a hangup");
        let file = reqwest::Client::new()
            .get(cb.param("RecordUrl").unwrap())
            .basic_auth(ACCOUNT, Some("change-me"))
            .send()
            .await
            .unwrap();
        assert_eq!(file.status(), 200);
        let bytes = file.bytes().await.unwrap();
        let reader = hound::WavReader::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
        let pcm: Vec<i16> = reader.into_samples::<i16>().map(Result::unwrap).collect();
        assert_eq!(pcm.len() as u64, ms * 8, "the header matches the data");
        assert!(detect(&pcm[pcm.len() / 4..], 850.0));
    })
    .await
    .expect("test timed out");
}

const CALLER_HZ: f64 = 430.0;
const ROOM_AGENT_HZ: f64 = 1170.0;

#[tokio::test]
async fn a_stream_keeps_hearing_the_call_in_an_mpc_with_each_track_apart() {
    use super::ai_stream::AiService;
    tokio::time::timeout(Duration::from_secs(60), async {
        let svc = AiService::start().await;
        let stub = HttpStub::start().await;
        stub.serve_xml(
            "/answer",
            &format!(
                r#"<Response><Stream audioTrack="both">{ws}</Stream><MultiPartyCall role="customer" enterSound="none" exitSound="none">streamed</MultiPartyCall></Response>"#,
                ws = svc.url("/both"),
            ),
        );
        let srv = server(&routes(&stub, "streamed"), 20);
        let api = Api::new(&srv);
        let (mut ua, mut rtp, media) = answered(srv.sip, "streamed").await;
        let start = svc.started(0).await;
        assert_eq!(
            start["start"]["tracks"],
            serde_json::json!(["inbound", "outbound"]),
            "{start}"
        );
        let caller = call_uuid(&stub, 0);
        wait_member(&api, "streamed", &caller).await;
        let (_agent, mut agent_rtp, agent_media) =
            answered(srv.sip, "agent-streamed").await;
        // Both talk in the room: the caller says one tone and hears the agent's.
        let talk = Duration::from_millis(3000);
        let (heard, _) = tokio::join!(
            rtp.talk(media, CALLER_HZ, talk),
            agent_rtp.talk(agent_media, ROOM_AGENT_HZ, talk)
        );
        assert!(
            tone_share(&heard[heard.len() / 2..], ROOM_AGENT_HZ) > 0.2,
            "the caller is in the room\n{}",
            srv.log()
        );
        let (inbound, outbound) =
            svc.with(0, |c| (c.heard_track("inbound"), c.heard_track("outbound")));
        // The last second and a half: the call has been in the room for a while.
        let tail = |pcm: &[i16]| pcm[pcm.len().saturating_sub(12_000)..].to_vec();
        let (inbound, outbound) = (tail(&inbound), tail(&outbound));
        assert!(inbound.len() >= 8_000 && outbound.len() >= 8_000, "{} / {}", inbound.len(), outbound.len());
        assert!(
            tone_share(&inbound, CALLER_HZ) > 0.3,
            "inbound: what the caller says, in the room\n{}",
            srv.log()
        );
        assert!(tone_share(&inbound, ROOM_AGENT_HZ) < 0.05, "inbound holds no room audio");
        assert!(
            tone_share(&outbound, ROOM_AGENT_HZ) > 0.3,
            "outbound: what the caller hears in the room"
        );
        assert!(tone_share(&outbound, CALLER_HZ) < 0.05, "outbound holds no caller audio");
        let _ = ua.bye().await;
        svc.wait(Duration::from_secs(5), |c| c[0].ended.then_some(()))
            .await;
    })
    .await
    .expect("test timed out");
}

const PLAYED_HZ: f64 = 600.0;

#[tokio::test]
async fn record_session_records_the_whole_call_in_the_background_into_the_mpc() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let stub = HttpStub::start().await;
        stub.serve("/tone.wav", 200, "audio/wav", wav_tone(PLAYED_HZ, 1.0, 8000));
        stub.serve("/session-started", 200, "text/plain", "");
        stub.serve("/session-done", 200, "text/plain", "");
        let started_url = stub.url("/session-started");
        let done_url = stub.url("/session-done");
        stub.serve_xml(
            "/answer",
            &format!(
                r#"<Response><Record recordSession="true" fileFormat="wav" action="{started_url}" callbackUrl="{done_url}"/><Play>{tone}</Play><MultiPartyCall role="customer" enterSound="none" exitSound="none">taped</MultiPartyCall></Response>"#,
                tone = stub.url("/tone.wav"),
            ),
        );
        let srv = server(&routes(&stub, "taped"), 20);
        let api = Api::new(&srv);
        let (mut ua, mut rtp, media) = answered(srv.sip, "taped").await;
        // The caller talks from the answer on, whenever the action's request arrives, so
        // the file's first second holds the caller even on a loaded machine.
        let (prompt, started) = tokio::join!(
            rtp.talk(media, CALLER_HZ, Duration::from_millis(1000)),
            stub.wait_for("/session-started", 1, Duration::from_secs(5))
        );
        // The action hears of the file at once; the Play runs meanwhile.
        assert_eq!(started.len(), 1, "{}", srv.log());
        assert_signed(&started[0], &started_url);
        let id = started[0].param("RecordingID").expect("RecordingID").to_string();
        let url = started[0].param("RecordUrl").expect("RecordUrl").to_string();
        assert!(detect(&prompt, PLAYED_HZ), "the verbs go on\n{}", srv.log());
        let caller = call_uuid(&stub, 0);
        wait_member(&api, "taped", &caller).await;
        let (_agent, mut agent_rtp, agent_media) = answered(srv.sip, "agent-taped").await;
        let talk = Duration::from_millis(2500);
        tokio::join!(
            rtp.talk(media, CALLER_HZ, talk),
            agent_rtp.talk(agent_media, ROOM_AGENT_HZ, talk)
        );
        assert!(
            stub.requests_to("/session-done").is_empty(),
            "the recording runs until the call ends"
        );
        let _ = ua.bye().await;
        let done = stub.wait_for("/session-done", 1, Duration::from_secs(5)).await;
        assert_eq!(done.len(), 1, "{}", srv.log());
        let cb = &done[0];
        assert_signed(cb, &done_url);
        assert_eq!(cb.param("RecordingID"), Some(id.as_str()));
        assert_eq!(cb.param("RecordUrl"), Some(url.as_str()));
        assert_eq!(cb.param("CallStatus"), Some("completed"));
        let ms: u64 = cb.param("RecordingDurationMs").unwrap().parse().unwrap();
        assert!((3000..=6000).contains(&ms), "{ms} ms");
        let file = reqwest::Client::new()
            .get(&url)
            .basic_auth(ACCOUNT, Some("change-me"))
            .send()
            .await
            .unwrap();
        assert_eq!(file.status(), 200);
        let bytes = file.bytes().await.unwrap();
        let reader = hound::WavReader::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
        let pcm: Vec<i16> = reader.into_samples::<i16>().map(Result::unwrap).collect();
        assert_eq!(pcm.len() as u64, ms * 8, "the header matches the data");
        // Before the room: the caller and the prompt it heard; in the room: the caller and
        // the agent it heard.
        let second = 8000;
        let early = &pcm[..second];
        let late = &pcm[pcm.len() - 2 * second..pcm.len() - second / 2];
        // Every frame the caller said is in the file, however its packets bunched up: a
        // dropped or doubled frame breaks the tone's phase and its share falls well below
        // the two tones' even split.
        assert!(tone_share(early, CALLER_HZ) > 0.25, "the caller, before the room");
        assert!(tone_share(early, PLAYED_HZ) > 0.1, "the prompt the caller heard");
        assert!(tone_share(late, CALLER_HZ) > 0.1, "the caller, in the room");
        assert!(tone_share(late, ROOM_AGENT_HZ) > 0.1, "the agent the caller heard in the room");
    })
    .await
    .expect("test timed out");
}
