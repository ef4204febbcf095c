//! Plivo XML call flows over real SIP, RTP and HTTP: answer_url, Play (WAV and MP3), Speak,
//! Wait, Redirect, Hangup, PreAnswer, and what happens when the application misbehaves.

use std::net::SocketAddr;
use std::time::Duration;

use huddle_testkit::{
    detect, mp3_tone, rms, tone_power, wav_tone, HttpStub, Msg, RtpPeer, ServerProcess, SipUa,
};

use super::{answered, server};

/// A route sending user `app` to the stub's `/answer`.
fn answer_route(stub: &HttpStub, method: &str) -> String {
    format!(
        "[[route]]\nuser = \"^app$\"\nanswer_url = \"{}\"\nanswer_method = \"{method}\"\n",
        stub.url("/answer")
    )
}

/// Receives audio (while sending silence, as a phone would) until the server sends BYE, which
/// is answered. Returns the audio and whether BYE came.
async fn listen_until_bye(
    ua: &mut SipUa,
    rtp: &mut RtpPeer,
    media: SocketAddr,
    limit: Duration,
) -> (Vec<i16>, bool) {
    let started = std::time::Instant::now();
    let mut audio = Vec::new();
    while started.elapsed() < limit {
        audio.extend(rtp.talk(media, 0.0, Duration::from_millis(100)).await);
        if let Some(msg) = ua.recv(Duration::from_millis(1)).await {
            if msg.start.starts_with("BYE ") {
                ua.reply_ok(&msg).await;
                return (audio, true);
            }
        }
    }
    (audio, false)
}

/// What a 100 ms window of received audio holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Heard {
    Tone(u32),
    Voice,
    Silence,
}

/// A pure tone: most of the window's energy at `freq` (speech harmonics never get there).
fn pure_tone(w: &[i16], freq: f64) -> bool {
    let energy: f64 = w.iter().map(|&x| f64::from(x).powi(2)).sum();
    rms(w) > 300.0 && tone_power(w, freq) > 0.6 * energy * w.len() as f64 / 2.0
}

fn classify(pcm: &[i16], tones: &[u32]) -> Vec<Heard> {
    pcm.chunks(800)
        .map(|w| {
            if let Some(f) = tones.iter().find(|f| pure_tone(w, f64::from(**f))) {
                Heard::Tone(*f)
            } else if rms(w) > 300.0 {
                Heard::Voice
            } else {
                Heard::Silence
            }
        })
        .collect()
}

/// Collapses a window sequence into runs of at least `min` windows.
fn runs(windows: &[Heard], min: usize) -> Vec<(Heard, usize)> {
    let mut out: Vec<(Heard, usize)> = Vec::new();
    for w in windows {
        match out.last_mut() {
            Some((h, n)) if h == w => *n += 1,
            _ => out.push((*w, 1)),
        }
    }
    out.retain(|(_, n)| *n >= min);
    // Merge neighbours that became adjacent after dropping short runs.
    let mut merged: Vec<(Heard, usize)> = Vec::new();
    for (h, n) in out {
        match merged.last_mut() {
            Some((last, m)) if *last == h => *m += n,
            _ => merged.push((h, n)),
        }
    }
    merged
}

async fn call(ua: &mut SipUa, rtp: &RtpPeer, user: &str) -> Msg {
    ua.invite(user, &SipUa::sdp(rtp.port(), &[0, 101]))
        .await
        .expect("a final response")
}

#[tokio::test]
async fn answer_url_play_speak_wait_redirect_play_hangup() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let stub = HttpStub::start().await;
        stub.serve("/tone.wav", 200, "audio/wav", wav_tone(600.0, 1.0, 16_000));
        stub.serve(
            "/tone.mp3",
            200,
            "audio/mpeg",
            mp3_tone(1400.0, 1.0, 16_000),
        );
        stub.serve_xml(
            "/answer",
            &format!(
                r#"<?xml version="1.0" encoding="UTF-8"?>
<Response>
  <Play>{wav}</Play>
  <Speak voice="WOMAN" language="en-US">Thank you for calling. Please hold the line.</Speak>
  <Wait length="2"/>
  <Redirect method="GET">{second}</Redirect>
  <Speak>This is never spoken.</Speak>
</Response>"#,
                wav = stub.url("/tone.wav"),
                second = stub.url("/second?step=2")
            ),
        );
        stub.serve_xml(
            "/second",
            &format!(
                "<Response><Play>{}</Play><Hangup/></Response>",
                stub.url("/tone.mp3")
            ),
        );
        let srv = server(&answer_route(&stub, "POST"), 100);
        let mut ua = SipUa::udp(srv.sip).await;
        let mut rtp = RtpPeer::bind().await;
        let ok = call(&mut ua, &rtp, "app").await;
        assert_eq!(ok.status(), 200, "{ok:?}\n{}", srv.log());
        ua.ack().await;
        let media = ok.sdp_audio().expect("SDP answer");
        let (audio, bye) =
            listen_until_bye(&mut ua, &mut rtp, media, Duration::from_secs(30)).await;
        assert!(
            bye,
            "the server hangs up after the last verb\n{}",
            srv.log()
        );

        let windows = classify(&audio, &[600, 1400]);
        let seq = runs(&windows, 3);
        let kinds: Vec<Heard> = seq.iter().map(|(h, _)| *h).collect();
        let pos = |h: Heard| kinds.iter().position(|k| *k == h);
        let wav = pos(Heard::Tone(600)).unwrap_or_else(|| panic!("WAV tone heard: {seq:?}"));
        let speech = kinds
            .iter()
            .enumerate()
            .skip(wav)
            .find(|(_, k)| **k == Heard::Voice)
            .map(|(i, _)| i)
            .unwrap_or_else(|| panic!("speech after the WAV tone: {seq:?}"));
        let silence = kinds
            .iter()
            .enumerate()
            .skip(speech)
            .find(|(i, k)| **k == Heard::Silence && seq[*i].1 >= 15)
            .map(|(i, _)| i)
            .unwrap_or_else(|| panic!("about 2 s of silence after the speech: {seq:?}"));
        let mp3 = kinds
            .iter()
            .enumerate()
            .skip(silence)
            .find(|(_, k)| **k == Heard::Tone(1400))
            .map(|(i, _)| i)
            .unwrap_or_else(|| panic!("MP3 tone after the Wait: {seq:?}"));
        assert!(wav < speech && speech < silence && silence < mp3, "{seq:?}");
        let wav_len = seq[wav].1;
        let mp3_len = seq[mp3].1;
        assert!(
            (8..=11).contains(&wav_len),
            "1 s WAV tone lasted {wav_len} windows"
        );
        assert!(
            (8..=11).contains(&mp3_len),
            "1 s MP3 tone lasted {mp3_len} windows"
        );
        let speech_windows: usize = seq[speech..silence]
            .iter()
            .filter(|(h, _)| *h == Heard::Voice)
            .map(|(_, n)| n)
            .sum();
        assert!(speech_windows >= 10, "at least 1 s of speech: {seq:?}");
        let wait_len = seq[silence].1;
        assert!(
            (17..=24).contains(&wait_len),
            "Wait length=2 gave {wait_len} windows"
        );
        assert!(
            !seq[mp3..].iter().any(|(h, _)| *h == Heard::Voice),
            "nothing after the Redirect of the first document is spoken: {seq:?}"
        );

        // What the application saw.
        let answer = stub.requests_to("/answer");
        assert_eq!(answer.len(), 1);
        let a = &answer[0];
        assert_eq!(a.method, "POST");
        assert!(a
            .content_type
            .starts_with("application/x-www-form-urlencoded"));
        let call_uuid = a.param("CallUUID").expect("CallUUID").to_string();
        assert_eq!(call_uuid.len(), 36, "a UUID: {call_uuid}");
        assert_eq!(a.param("From"), Some("tester"));
        assert_eq!(a.param("To"), Some("app"));
        assert_eq!(a.param("Direction"), Some("inbound"));
        assert_eq!(a.param("CallStatus"), Some("ringing"));
        assert_eq!(a.param("Event"), Some("StartApp"));
        let second = stub.requests_to("/second");
        assert_eq!(second.len(), 1);
        let r = &second[0];
        assert_eq!(r.method, "GET");
        assert_eq!(r.param("step"), Some("2"), "the URL's own query is kept");
        assert_eq!(r.param("CallUUID"), Some(call_uuid.as_str()));
        assert_eq!(r.param("Event"), Some("Redirect"));
        assert_eq!(r.param("CallStatus"), Some("in-progress"));
        assert_eq!(stub.requests_to("/tone.wav").len(), 1);
        assert_eq!(stub.requests_to("/tone.mp3").len(), 1);
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn answer_url_by_get_carries_the_parameters_in_the_query() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let stub = HttpStub::start().await;
        stub.serve_xml("/answer", "<Response><Hangup reason=\"busy\"/></Response>");
        let srv = server(&answer_route(&stub, "GET"), 20);
        let mut ua = SipUa::udp(srv.sip).await;
        let rtp = RtpPeer::bind().await;
        let resp = call(&mut ua, &rtp, "app").await;
        assert_eq!(resp.status(), 486, "Hangup reason=busy refuses with 486");
        let got = stub.requests_to("/answer");
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].method, "GET");
        assert_eq!(got[0].param("To"), Some("app"));
        assert_eq!(got[0].param("Event"), Some("StartApp"));
        assert!(got[0].form.is_empty());
    })
    .await
    .expect("timed out");
}

/// Each broken application ends the call with the matching cause, and the server takes the
/// next call.
#[tokio::test]
async fn broken_answer_urls_end_the_call_with_the_right_cause() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let stub = HttpStub::start().await;
        stub.serve("/500", 500, "text/plain", "oops");
        stub.serve(
            "/html",
            200,
            "text/html",
            "<html><body><h1>Welcome</h1></body></html>",
        );
        stub.serve_xml("/dial", "<Response><Dial>123</Dial></Response>");
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let routes = format!(
            "[[route]]\nuser = \"^down$\"\nanswer_url = \"http://{dead}/answer#rc=0\"\n\
             [[route]]\nuser = \"^e500$\"\nanswer_url = \"{}\"\n\
             [[route]]\nuser = \"^html$\"\nanswer_url = \"{}\"\n\
             [[route]]\nuser = \"^dial$\"\nanswer_url = \"{}\"\n",
            stub.url("/500"),
            stub.url("/html"),
            stub.url("/dial"),
        );
        let srv = server(&routes, 40);
        for (user, status, phrase) in [
            ("down", 502, "Error Reaching Answer URL"),
            ("e500", 502, "Error Reaching Answer URL"),
            ("html", 500, "Invalid Answer XML"),
            ("dial", 500, "Invalid Answer XML"),
        ] {
            let mut ua = SipUa::udp(srv.sip).await;
            let rtp = RtpPeer::bind().await;
            let resp = call(&mut ua, &rtp, user).await;
            assert_eq!(resp.status(), status, "{user}: {resp:?}");
            assert!(resp.start.contains(phrase), "{user}: {}", resp.start);
        }
        // What the operator reads: the log naming the URL, the hangup cause codes and the
        // verb. The caller sees only the cause's name in the reason phrase (checked above);
        // the codes, the URL and the verb have no signal outside the log.
        let log = srv.log();
        assert!(
            log.contains(&format!("http://{dead}/answer")),
            "the log names the URL"
        );
        assert!(log.contains("7011") && log.contains("8011"), "{log}");
        assert!(log.contains("unsupported verb Dial"), "{log}");
        // A 500 is not retried by default (policy ct,rt), a refused connection is not retried
        // with rc=0.
        assert_eq!(stub.requests_to("/500").len(), 1);

        // Still serving.
        let mut ua = SipUa::udp(srv.sip).await;
        let mut rtp = RtpPeer::bind().await;
        let ok = call(&mut ua, &rtp, "echo").await;
        assert_eq!(ok.status(), 200);
        ua.ack().await;
        let heard = rtp
            .talk(ok.sdp_audio().unwrap(), 1000.0, Duration::from_millis(800))
            .await;
        assert!(detect(&heard[heard.len().saturating_sub(2400)..], 1000.0));
        ua.bye().await;
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn redirect_failures_hang_up_with_bye() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let stub = HttpStub::start().await;
        stub.serve_xml(
            "/answer",
            &format!(
                "<Response><Wait length=\"1\"/><Redirect>{}</Redirect></Response>",
                stub.url("/broken")
            ),
        );
        stub.serve_xml("/broken", "<Response><Play>not a url</Play></Response>");
        let srv = server(&answer_route(&stub, "POST"), 20);
        let (mut ua, mut rtp, media) = answered(srv.sip, "app").await;
        let (_, bye) = listen_until_bye(&mut ua, &mut rtp, media, Duration::from_secs(10)).await;
        assert!(bye, "{}", srv.log());
        let broken = stub.requests_to("/broken");
        assert_eq!(broken.len(), 1);
        assert_eq!(broken[0].method, "POST", "Redirect defaults to POST");
        // The hangup cause (8014, Invalid Redirect XML) is only in the log: the BYE carries no
        // Reason and a call outside an MPC sends no callback.
        assert!(srv.log().contains("8014"), "{}", srv.log());
    })
    .await
    .expect("timed out");
}

/// Calls `user` on a server whose only extra route is `routes`, listens until the server's
/// BYE (at most `limit`) and returns the server, what was heard, whether BYE came, and when.
async fn call_inline_route(
    routes: &str,
    user: &str,
    limit: Duration,
) -> (ServerProcess, Vec<i16>, bool, Duration) {
    let srv = server(routes, 20);
    let (mut ua, mut rtp, media) = answered(srv.sip, user).await;
    let started = std::time::Instant::now();
    let (audio, bye) = listen_until_bye(&mut ua, &mut rtp, media, limit).await;
    (srv, audio, bye, started.elapsed())
}

#[tokio::test]
async fn inline_route_xml_runs_and_ends_with_end_of_xml() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let routes = "[[route]]\nuser = \"^short-(?P<n>[0-9])$\"\nxml = '<Response><Wait length=\"$n\"/></Response>'\n";
        let (srv, audio, bye, took) =
            call_inline_route(routes, "short-1", Duration::from_secs(10)).await;
        assert!(bye);
        assert!(
            took >= Duration::from_millis(800) && took < Duration::from_secs(3),
            "{took:?}"
        );
        assert!(audio.len() >= 8000 * 8 / 10, "silence is sent as RTP during Wait");
        assert!(rms(&audio) < 50.0);
        // The hangup cause (4010, End Of XML Instructions) is only in the log: the BYE carries
        // no Reason and a call outside an MPC sends no callback.
        assert!(srv.log().contains("4010"), "{}", srv.log());
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn preanswer_plays_early_media_before_the_call_is_refused() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let stub = HttpStub::start().await;
        stub.serve("/tone.wav", 200, "audio/x-wav", wav_tone(900.0, 1.0, 8_000));
        stub.serve_xml(
            "/answer",
            &format!(
                "<Response><PreAnswer><Play>{}</Play></PreAnswer><Hangup reason=\"rejected\"/></Response>",
                stub.url("/tone.wav")
            ),
        );
        let srv = server(&answer_route(&stub, "POST"), 20);
        let mut ua = SipUa::udp(srv.sip).await;
        let mut rtp = RtpPeer::bind().await;
        let text = ua.invite_text("app", &SipUa::sdp(rtp.port(), &[0]));
        ua.send_raw(text.as_bytes()).await;
        let progress = ua
            .recv_until(Duration::from_secs(5), |m| m.status() == 183)
            .await
            .expect("183 Session Progress");
        let media = progress.sdp_audio().expect("183 carries SDP");
        let heard = rtp.talk(media, 0.0, Duration::from_millis(900)).await;
        assert!(
            detect(&heard[heard.len().saturating_sub(3200)..], 900.0),
            "early media plays the tone"
        );
        let last = ua
            .recv_until(Duration::from_secs(5), |m| m.status() >= 200)
            .await
            .expect("final response");
        assert_eq!(last.status(), 603);
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn scheduled_hangup_lets_the_document_continue_until_it_fires() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let routes = "[[route]]\nuser = \"^sched$\"\nxml = '<Response><Hangup schedule=\"1\"/><Wait length=\"10\"/></Response>'\n";
        let (_srv, _, bye, took) = call_inline_route(routes, "sched", Duration::from_secs(8)).await;
        assert!(bye);
        assert!(took < Duration::from_secs(3), "{took:?}");
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn caller_hanging_up_during_a_slow_answer_url_is_clean() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let stub = HttpStub::start().await;
        stub.serve_delayed(
            "/answer",
            200,
            "text/xml",
            "<Response><Wait length=\"1\"/></Response>",
            Duration::from_secs(3),
        );
        let srv = server(&answer_route(&stub, "POST"), 20);
        let mut ua = SipUa::udp(srv.sip).await;
        let rtp = RtpPeer::bind().await;
        let invite = ua.invite_text("app", &SipUa::sdp(rtp.port(), &[0]));
        ua.send_raw(invite.as_bytes()).await;
        stub.wait_for("/answer", 1, Duration::from_secs(5)).await;
        ua.cancel_invite("app").await;
        let final_resp = ua
            .recv_until(Duration::from_secs(5), |m| {
                m.status() >= 200 && m.cseq_method() == "INVITE"
            })
            .await
            .expect("final response to the INVITE");
        assert_eq!(final_resp.status(), 487);
        let cancelled = srv
            .metric_until(
                "huddle_calls_cancelled_total",
                Duration::from_secs(5),
                |v| v >= 1.0,
            )
            .await;
        assert_eq!(cancelled, Some(1.0));
        // The call's task finishes once the slow answer comes back (after 3 s)...
        let active = srv
            .metric_until("huddle_calls_active", Duration::from_secs(10), |v| v == 0.0)
            .await;
        assert_eq!(active, Some(0.0), "the call is gone\n{}", srv.log());
        // ...and ends as the caller's doing, not by running the document it fetched. Which
        // way it ended is only in the log (no Reason, no callback outside an MPC); the line is
        // written before the task finishes.
        assert!(
            srv.log().contains("call ended by the caller"),
            "{}",
            srv.log()
        );
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn unplayable_files_and_a_missing_speech_engine_are_skipped_with_a_log_line() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let stub = HttpStub::start().await;
        stub.serve("/tone.wav", 200, "audio/wav", wav_tone(700.0, 1.0, 8_000));
        stub.serve("/garbage.wav", 200, "audio/wav", b"RIFF\x00\x00not audio".to_vec());
        stub.serve_xml(
            "/answer",
            &format!(
                "<Response><Play>{missing}</Play><Play>{garbage}</Play><Speak>Hello</Speak><Play>{tone}</Play></Response>",
                missing = stub.url("/missing.wav"),
                garbage = stub.url("/garbage.wav"),
                tone = stub.url("/tone.wav"),
            ),
        );
        let config = format!(
            "{}[audio]\ntts_command = \"/nonexistent/espeak-ng\"\n",
            answer_route(&stub, "POST")
        );
        let srv = server(&config, 20);
        let (mut ua, mut rtp, media) = answered(srv.sip, "app").await;
        let (audio, bye) = listen_until_bye(
            &mut ua,
            &mut rtp,
            media,
            Duration::from_secs(10),
        )
        .await;
        assert!(bye);
        assert!(
            detect(&audio[audio.len().saturating_sub(8000)..], 700.0),
            "the playable file still plays"
        );
        // Each failure is counted by kind...
        for kind in ["status", "decode", "tts_missing"] {
            let metric = format!("huddle_prompt_errors_total{{kind=\"{kind}\"}}");
            let count = srv
                .metric_until(&metric, Duration::from_secs(2), |v| v >= 1.0)
                .await;
            assert!(count.is_some_and(|v| v >= 1.0), "{metric}: {count:?}");
        }
        // ...and the log line naming the file or the engine is what the operator gets; it
        // has no signal outside the log.
        let log = srv.log();
        assert!(log.contains("missing.wav") && log.contains("404"), "{log}");
        assert!(log.contains("garbage.wav"), "{log}");
        assert!(log.contains("/nonexistent/espeak-ng"), "the log names the engine: {log}");
    })
    .await
    .expect("timed out");
}
