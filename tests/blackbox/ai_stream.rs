//! AI agent streams end to end: a WebSocket AI service written here on tokio-tungstenite
//! (it checks the upgrade's signature and the `start` event, records every message and
//! answers with tones by `playAudio`), SIP participants sending their own tones over RTP,
//! the REST API and XML joining the stream member, and the service misbehaving in every way
//! the protocol allows, while the people in the room keep hearing each other.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use futures_util::{SinkExt, StreamExt};
use huddle_testkit::{tone_share, ulaw_decode, ulaw_encode, HttpStub};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

use super::room::{join, talk_all, Party};
use super::{server, Api};

const CUSTOMER: f64 = 430.0;
const AGENT: f64 = 710.0;
const COACH: f64 = 1090.0;
const AI: f64 = 1830.0;
const TOKEN: &str = "change-me";

/// What the service does to the connection it holds.
pub(super) enum Cmd {
    Text(String),
    Binary(Vec<u8>),
    Close(CloseCode),
    /// Drops the TCP connection without a closing handshake.
    Abort,
}

/// One WebSocket connection the service accepted.
pub(super) struct Conn {
    uri: String,
    headers: Vec<(String, String)>,
    /// Every text message from huddle, parsed, with its arrival time.
    messages: Vec<(Instant, Value)>,
    tx: mpsc::UnboundedSender<Cmd>,
    pub(super) ended: bool,
}

impl Conn {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(super) fn events(&self, name: &str) -> Vec<(Instant, Value)> {
        self.messages
            .iter()
            .filter(|(_, m)| m["event"] == name)
            .cloned()
            .collect()
    }

    /// The media received, decoded to 8 kHz samples (16 kHz is decimated: every tone used
    /// here is far below 4 kHz).
    pub(super) fn heard(&self) -> Vec<i16> {
        let Some((_, start)) = self.events("start").into_iter().next() else {
            return Vec::new();
        };
        let encoding = start["start"]["mediaFormat"]["encoding"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let rate = start["start"]["mediaFormat"]["sampleRate"]
            .as_u64()
            .unwrap_or(8000);
        let mut pcm = Vec::new();
        for (_, m) in self.events("media") {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(m["media"]["payload"].as_str().unwrap_or(""))
                .expect("media payload is base64");
            let samples: Vec<i16> = if encoding == "audio/x-mulaw" {
                bytes.iter().map(|b| ulaw_decode(*b)).collect()
            } else {
                bytes
                    .chunks_exact(2)
                    .map(|b| i16::from_le_bytes([b[0], b[1]]))
                    .collect()
            };
            if rate == 16000 {
                pcm.extend(samples.iter().step_by(2));
            } else {
                pcm.extend(samples);
            }
        }
        pcm
    }
}

/// The AI service.
pub(super) struct AiService {
    addr: SocketAddr,
    conns: Arc<Mutex<Vec<Conn>>>,
}

impl AiService {
    pub(super) async fn start() -> AiService {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns: Arc<Mutex<Vec<Conn>>> = Arc::default();
        let shared = conns.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let seen = Arc::new(Mutex::new((String::new(), Vec::new())));
                    let seen_in = seen.clone();
                    // tungstenite's callback type fixes the (large) error response type.
                    #[allow(clippy::result_large_err)]
                    let callback = move |req: &Request, resp: Response| {
                        let headers = req
                            .headers()
                            .iter()
                            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
                            .collect();
                        *seen_in.lock().unwrap() = (req.uri().to_string(), headers);
                        Ok(resp)
                    };
                    let Ok(ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
                        return;
                    };
                    let (uri, headers) = seen.lock().unwrap().clone();
                    let (tx, mut rx) = mpsc::unbounded_channel();
                    let index = {
                        let mut c = shared.lock().unwrap();
                        c.push(Conn {
                            uri,
                            headers,
                            messages: Vec::new(),
                            tx,
                            ended: false,
                        });
                        c.len() - 1
                    };
                    let (mut sink, mut source) = ws.split();
                    loop {
                        tokio::select! {
                            msg = source.next() => match msg {
                                Some(Ok(Message::Text(t))) => {
                                    let v: Value = serde_json::from_str(t.as_str()).expect("huddle sends JSON");
                                    shared.lock().unwrap()[index].messages.push((Instant::now(), v));
                                }
                                Some(Ok(_)) => {}
                                _ => break,
                            },
                            cmd = rx.recv() => match cmd {
                                Some(Cmd::Text(t)) => { let _ = sink.send(Message::Text(t.into())).await; }
                                Some(Cmd::Binary(b)) => { let _ = sink.send(Message::Binary(b.into())).await; }
                                Some(Cmd::Close(code)) => {
                                    let _ = sink.send(Message::Close(Some(CloseFrame { code, reason: "".into() }))).await;
                                }
                                Some(Cmd::Abort) | None => break,
                            },
                        }
                    }
                    shared.lock().unwrap()[index].ended = true;
                });
            }
        });
        AiService { addr, conns }
    }

    pub(super) fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    fn count(&self) -> usize {
        self.conns.lock().unwrap().len()
    }

    /// Waits until `probe` finds something in the connections.
    pub(super) async fn wait<T>(
        &self,
        within: Duration,
        probe: impl Fn(&[Conn]) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + within;
        loop {
            if let Some(t) = probe(&self.conns.lock().unwrap()) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "the AI service did not see what it waited for"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits for connection `i` to have sent `start`; returns it.
    pub(super) async fn started(&self, i: usize) -> Value {
        self.wait(Duration::from_secs(10), |c| {
            c.get(i)?.events("start").first().map(|(_, v)| v.clone())
        })
        .await
    }

    pub(super) fn send(&self, i: usize, cmd: Cmd) {
        let _ = self.conns.lock().unwrap()[i].tx.send(cmd);
    }

    pub(super) fn with<T>(&self, i: usize, f: impl FnOnce(&Conn) -> T) -> T {
        f(&self.conns.lock().unwrap()[i])
    }
}

/// A tone of `secs` at `rate`, amplitude 3000.
fn tone(freq: f64, rate: u32, secs: f64) -> Vec<i16> {
    (0..(secs * f64::from(rate)) as usize)
        .map(|i| {
            (3000.0 * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin()) as i16
        })
        .collect()
}

/// A `playAudio` message in `content_type` at `rate`.
fn play_audio(content_type: &str, rate: u32, pcm: &[i16]) -> String {
    let bytes: Vec<u8> = if content_type == "audio/x-mulaw" {
        pcm.iter().map(|s| ulaw_encode(*s)).collect()
    } else {
        pcm.iter().flat_map(|s| s.to_le_bytes()).collect()
    };
    json!({"event": "playAudio", "media": {"contentType": content_type, "sampleRate": rate,
        "payload": base64::engine::general_purpose::STANDARD.encode(bytes)}})
    .to_string()
}

/// `playAudio` of `secs` of `freq`, cut into one-second messages (the 64 KB limit).
pub(super) fn play_tone(
    svc: &AiService,
    conn: usize,
    content_type: &str,
    rate: u32,
    freq: f64,
    secs: f64,
) {
    let pcm = tone(freq, rate, secs);
    for piece in pcm.chunks(rate as usize) {
        svc.send(conn, Cmd::Text(play_audio(content_type, rate, piece)));
    }
}

fn routes() -> String {
    "[[route]]\nuser = \"^(?P<role>agent|customer|supervisor)-(?P<mpc>[a-z0-9]+)$\"\n\
     xml = '<Response><MultiPartyCall role=\"$role\" enterSound=\"none\" exitSound=\"none\" stayAlone=\"true\">$mpc</MultiPartyCall></Response>'\n"
        .to_string()
}

/// Adds an ai-agent stream member to `mpc` by the API; returns the 201's `calls[0]`.
async fn add_stream(api: &Api, mpc: &str, params: Value) -> Value {
    let mut body = json!({"role": "ai-agent"});
    for (k, v) in params.as_object().unwrap() {
        body[k] = v.clone();
    }
    let (status, answer) = api
        .send("POST", &format!("name_{mpc}/Participant/"), Some(body))
        .await;
    assert_eq!(status, 201, "{answer}");
    answer["calls"][0].clone()
}

fn expected_v3(conn: &Conn) -> String {
    let host = conn.header("host").unwrap();
    let url = format!("http://{host}{}", conn.uri);
    let nonce = conn
        .header("X-Plivo-Signature-V3-Nonce")
        .expect("nonce header");
    huddle_events::signature::v3_signature(TOKEN, huddle_xml::HttpMethod::Get, &url, &[], nonce)
}

fn assert_share(who: &str, pcm: &[i16], freq: f64, heard: bool) {
    let share = tone_share(pcm, freq);
    if heard {
        assert!(
            share > 0.05,
            "{who} should hear {freq} Hz (share {share:.4})"
        );
    } else {
        assert!(
            share < 0.005,
            "{who} must not hear {freq} Hz (share {share:.4})"
        );
    }
}

#[tokio::test]
async fn the_service_hears_customer_and_agent_not_the_coach_and_is_heard_by_them() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let srv = server(&routes(), 60);
        let svc = AiService::start().await;
        let stub = HttpStub::start().await;
        let api = Api::new(&srv);
        let mut p = vec![
            join(srv.sip, "customer-ai", CUSTOMER).await,
            join(srv.sip, "agent-ai", AGENT).await,
            join(srv.sip, "supervisor-ai", COACH).await,
        ];
        let call = add_stream(
            &api,
            "ai",
            json!({
                "ai_agent_stream_service_url": svc.url("/agent?tenant=t1"),
                "ai_agent_stream_content_type": "audio/x-l16;rate=8000",
                "ai_agent_stream_status_callback_url": stub.url("/stream"),
                "ai_agent_stream_extra_headers": {"tenant": "t1"},
            }),
        )
        .await;
        let call_uuid = call["call_uuid"].as_str().unwrap().to_string();
        let member_id = call["member_id"].as_str().unwrap().to_string();

        // The upgrade is signed, start comes first and describes the stream.
        let start = svc.started(0).await;
        svc.with(0, |c| {
            assert_eq!(c.uri, "/agent?tenant=t1");
            assert_eq!(
                c.header("X-Plivo-Signature-V3"),
                Some(expected_v3(c).as_str())
            );
            assert_eq!(
                c.messages[0].1["event"], "start",
                "start is the first message"
            );
        });
        assert_eq!(start["sequenceNumber"], 1);
        assert_eq!(start["start"]["callId"], call_uuid.as_str());
        assert_eq!(start["start"]["accountId"], super::ACCOUNT);
        assert_eq!(start["start"]["mediaFormat"]["encoding"], "audio/x-l16");
        assert_eq!(start["start"]["mediaFormat"]["sampleRate"], 8000);
        assert_eq!(start["extra_headers"], "tenant=t1");
        uuid::Uuid::parse_str(start["start"]["streamId"].as_str().unwrap()).expect("uuid");

        // The member is listed like any other.
        let member = api
            .wait_json("name_ai/Participant/", Duration::from_secs(5), |v| {
                v["objects"].as_array().is_some_and(|o| o.len() == 4)
            })
            .await;
        let listed = member["objects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["call_uuid"] == call_uuid.as_str())
            .cloned()
            .expect("the stream member is listed");
        assert_eq!(listed["member_id"], member_id.as_str());
        assert_eq!(listed["role"], "ai-agent");

        play_tone(&svc, 0, "audio/x-l16", 8000, AI, 6.0);
        let heard = talk_all(&mut p, 3.0).await;
        assert_share("customer", &heard[0], AI, true);
        assert_share("agent", &heard[1], AI, true);
        assert_share("coach", &heard[2], AI, true);
        // Everyone still hears the others as the table says.
        assert_share("customer", &heard[0], AGENT, true);
        assert_share("customer", &heard[0], COACH, false);
        assert_share("agent", &heard[1], CUSTOMER, true);

        let service_heard = svc.with(0, Conn::heard);
        let last = &service_heard[service_heard.len().saturating_sub(8000)..];
        assert!(last.len() >= 8000, "a second of media at least");
        assert_share("the AI service", last, CUSTOMER, true);
        assert_share("the AI service", last, AGENT, true);
        assert_share("the AI service", last, COACH, false);
        assert_share("the AI service", last, AI, false);
        svc.with(0, |c| {
            let media = c.events("media");
            let seqs: Vec<u64> = c
                .messages
                .iter()
                .map(|(_, m)| m["sequenceNumber"].as_u64().unwrap())
                .collect();
            assert!(
                seqs.windows(2).all(|w| w[1] == w[0] + 1),
                "sequence numbers count up by one"
            );
            let (_, m) = &media[0];
            assert_eq!(m["media"]["track"], "inbound");
            assert_eq!(m["extra_headers"], "tenant=t1");
            let payload = base64::engine::general_purpose::STANDARD
                .decode(m["media"]["payload"].as_str().unwrap())
                .unwrap();
            assert_eq!(payload.len(), 320, "20 ms of L16 at 8 kHz");
        });

        // The status callback said the stream started, signed like every callback.
        let started = stub
            .wait_until("/stream", Duration::from_secs(5), |r| {
                r.iter().any(|r| r.param("Event") == Some("StartStream"))
            })
            .await
            .expect("StartStream callback");
        let cb = started
            .iter()
            .find(|r| r.param("Event") == Some("StartStream"))
            .unwrap();
        assert_eq!(cb.param("CallUUID"), Some(call_uuid.as_str()));
        assert_eq!(cb.param("MemberID"), Some(member_id.as_str()));
        assert!(cb.header("X-Plivo-Signature-V3").is_some());

        for party in &mut p {
            party.ua.bye().await;
        }
    })
    .await
    .expect("timed out");
}

/// The 20 ms packets in which `freq` is present (the share `assert_share` calls heard).
fn tone_times(heard: &[(Instant, Vec<i16>)], freq: f64) -> Vec<Instant> {
    heard
        .iter()
        .filter(|(_, pcm)| pcm.len() >= 160 && tone_share(pcm, freq) > 0.05)
        .map(|(t, _)| *t)
        .collect()
}

#[tokio::test]
async fn clear_audio_cuts_the_voice_at_once_and_checkpoints_follow_the_audio() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let srv = server(&routes(), 40);
        let svc = AiService::start().await;
        let api = Api::new(&srv);
        let mut customer = join(srv.sip, "customer-clear", CUSTOMER).await;
        add_stream(
            &api,
            "clear",
            json!({"ai_agent_stream_service_url": svc.url("/")}),
        )
        .await;
        svc.started(0).await;

        // One second of tone, then a checkpoint: playedStream comes once it has played.
        let sent = Instant::now();
        play_tone(&svc, 0, "audio/x-l16", 8000, AI, 1.0);
        svc.send(
            0,
            Cmd::Text(
                json!({"event": "checkpoint", "streamId": "x", "name": "one-second"}).to_string(),
            ),
        );
        let heard = customer
            .rtp
            .talk_timed(customer.media, CUSTOMER, Duration::from_millis(1600))
            .await;
        let played = svc
            .wait(Duration::from_secs(5), |c| {
                c[0].events("playedStream").first().cloned()
            })
            .await;
        assert_eq!(played.1["name"], "one-second");
        let tone_at = tone_times(&heard, AI);
        assert!(
            tone_at.len() >= 40,
            "the second of tone was heard ({} packets)",
            tone_at.len()
        );
        let last_tone = *tone_at.last().unwrap();
        assert!(
            played.0 >= last_tone,
            "playedStream came after the audio it marks had played"
        );
        assert!(
            played.0.duration_since(sent) >= Duration::from_millis(950),
            "not before a second of audio"
        );

        // Ten seconds queued, then clearAudio: the voice stops within one tick.
        play_tone(&svc, 0, "audio/x-l16", 8000, AI, 10.0);
        svc.send(
            0,
            Cmd::Text(json!({"event": "checkpoint", "name": "never"}).to_string()),
        );
        let first = customer
            .rtp
            .talk_timed(customer.media, CUSTOMER, Duration::from_millis(600))
            .await;
        assert!(tone_times(&first, AI).len() > 10, "the long tone plays");
        svc.send(
            0,
            Cmd::Text(json!({"event": "clearAudio", "streamId": "x"}).to_string()),
        );
        let after = customer
            .rtp
            .talk_timed(customer.media, CUSTOMER, Duration::from_millis(1000))
            .await;
        let cleared = svc
            .wait(Duration::from_secs(5), |c| {
                c[0].events("clearedAudio").first().map(|(t, _)| *t)
            })
            .await;
        // The room skips the cleared frames from its first tick after the clear, which
        // happened before clearedAudio was sent: one tick, plus the scheduling of this test.
        if let Some(last) = tone_times(&after, AI).last() {
            assert!(
                *last <= cleared + Duration::from_millis(20 + 25),
                "tone heard {:?} after clearedAudio",
                last.duration_since(cleared)
            );
        }
        assert!(
            tone_times(&after[after.len() / 2..], AI).is_empty(),
            "the cleared tone never comes back"
        );
        svc.with(0, |c| {
            assert!(
                c.events("playedStream")
                    .iter()
                    .all(|(_, m)| m["name"] != "never"),
                "a cleared checkpoint is never reported"
            )
        });
        customer.ua.bye().await;
    })
    .await
    .expect("timed out");
}

async fn content_type_round_trip(content_type: &str, rate: u32) {
    let srv = server(&routes(), 20);
    let svc = AiService::start().await;
    let api = Api::new(&srv);
    let mut customer = join(srv.sip, "customer-types", CUSTOMER).await;
    let full = format!("{content_type};rate={rate}");
    add_stream(
        &api,
        "types",
        json!({"ai_agent_stream_service_url": svc.url("/"), "ai_agent_stream_content_type": full}),
    )
    .await;
    let start = svc.started(0).await;
    assert_eq!(start["start"]["mediaFormat"]["encoding"], content_type);
    assert_eq!(start["start"]["mediaFormat"]["sampleRate"], rate);
    play_tone(&svc, 0, content_type, rate, AI, 4.0);
    let heard = customer
        .rtp
        .talk(customer.media, CUSTOMER, Duration::from_secs(3))
        .await;
    assert_share(
        &format!("customer ({full})"),
        &heard[heard.len() - 8000..],
        AI,
        true,
    );
    svc.with(0, |c| {
        let (_, m) = c.events("media")[0].clone();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(m["media"]["payload"].as_str().unwrap())
            .unwrap();
        let per_frame = if content_type == "audio/x-mulaw" {
            160
        } else {
            rate as usize / 50 * 2
        };
        assert_eq!(bytes.len(), per_frame, "{full}: 20 ms per media message");
        let pcm = c.heard();
        assert_share(
            &format!("AI service ({full})"),
            &pcm[pcm.len() - 8000..],
            CUSTOMER,
            true,
        );
    });
    customer.ua.bye().await;
}

#[tokio::test]
async fn every_content_type_round_trips() {
    tokio::time::timeout(Duration::from_secs(60), async {
        content_type_round_trip("audio/x-l16", 8000).await;
        content_type_round_trip("audio/x-l16", 16000).await;
        content_type_round_trip("audio/x-mulaw", 8000).await;
    })
    .await
    .expect("timed out");
}

/// A customer and an agent talking; returns what each heard in its last second.
async fn pair_talks(p: &mut [Party], secs: f64) {
    let heard = talk_all(p, secs).await;
    assert_share("customer", &heard[0], AGENT, true);
    assert_share("agent", &heard[1], CUSTOMER, true);
}

/// Customer and agent in `mpc`, plus a stream member on `url` with status callbacks to
/// `stub`'s `/stream`; returns the parties and the member's call uuid.
async fn room_with_stream(
    srv: &huddle_testkit::ServerProcess,
    api: &Api,
    stub: &HttpStub,
    mpc: &str,
    url: &str,
) -> (Vec<Party>, String) {
    let p = vec![
        join(srv.sip, &format!("customer-{mpc}"), CUSTOMER).await,
        join(srv.sip, &format!("agent-{mpc}"), AGENT).await,
    ];
    let call = add_stream(
        api,
        mpc,
        json!({"ai_agent_stream_service_url": url,
               "ai_agent_stream_status_callback_url": stub.url("/stream")}),
    )
    .await;
    (p, call["call_uuid"].as_str().unwrap().to_string())
}

/// The participant list shows the stream member as gone (exit time and cause set).
fn left(v: &Value) -> bool {
    v["objects"].as_array().is_some_and(|o| {
        o.iter().any(|m| {
            m["role"] == "ai-agent" && !m["exit_time"].is_null() && !m["exit_cause"].is_null()
        })
    })
}

async fn stream_member_left(api: &Api, mpc: &str) -> bool {
    let (_, v) = api.get(&format!("name_{mpc}/Participant/")).await;
    left(&v)
}

#[tokio::test]
async fn connect_and_tls_failures_are_retried_reported_and_end_the_member() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let srv = server(&routes(), 40);
        let api = Api::new(&srv);
        let stub = HttpStub::start().await;
        // Nothing listens on a port that was just freed.
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        // A plain WebSocket service asked for TLS: the handshake fails.
        let plain = AiService::start().await;
        for (mpc, url) in [
            ("refused", format!("ws://{closed}/")),
            ("tls", format!("wss://{}/", plain.addr)),
        ] {
            let (mut p, call_uuid) = room_with_stream(&srv, &api, &stub, mpc, &url).await;
            pair_talks(&mut p, 1.0).await;
            // The first attempt and two retries, each reported, then the member leaves.
            let dropped = stub
                .wait_until("/stream", Duration::from_secs(15), |r| {
                    r.iter()
                        .filter(|r| {
                            r.param("CallUUID") == Some(call_uuid.as_str())
                                && r.param("Event") == Some("DroppedStream")
                        })
                        .count()
                        >= 3
                })
                .await
                .unwrap_or_else(|| panic!("{mpc}: three DroppedStream callbacks"));
            let one = dropped
                .iter()
                .find(|r| r.param("CallUUID") == Some(call_uuid.as_str()))
                .unwrap();
            assert!(
                one.param("Error")
                    .is_some_and(|e| e.contains("cannot connect")),
                "{mpc}: {:?}",
                one.param("Error")
            );
            assert!(one.header("X-Plivo-Signature-V3").is_some());
            api.wait_json(
                &format!("name_{mpc}/Participant/"),
                Duration::from_secs(5),
                left,
            )
            .await;
            pair_talks(&mut p, 1.0).await;
            for party in &mut p {
                party.ua.bye().await;
            }
        }
        assert_eq!(plain.count(), 0, "no WebSocket was ever opened without TLS");
        assert!(srv.log().contains("AI stream failed for good"));
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn an_abrupt_close_reconnects_and_the_room_never_notices() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let srv = server(&routes(), 40);
        let api = Api::new(&srv);
        let stub = HttpStub::start().await;
        let svc = AiService::start().await;
        let (mut p, _) = room_with_stream(&srv, &api, &stub, "abrupt", &svc.url("/")).await;
        svc.started(0).await;
        play_tone(&svc, 0, "audio/x-l16", 8000, AI, 10.0);
        pair_talks(&mut p, 1.0).await;
        svc.send(0, Cmd::Abort);
        // A new socket, a new start, numbered from 1 again.
        let start = svc.started(1).await;
        assert_eq!(start["sequenceNumber"], 1);
        stub.wait_until("/stream", Duration::from_secs(5), |r| {
            r.iter().any(|r| r.param("Event") == Some("DroppedStream"))
        })
        .await
        .expect("DroppedStream reported");
        play_tone(&svc, 1, "audio/x-l16", 8000, AI, 4.0);
        let heard = talk_all(&mut p, 2.0).await;
        assert_share("customer", &heard[0], AGENT, true);
        assert_share("agent", &heard[1], CUSTOMER, true);
        assert_share("customer", &heard[0], AI, true);
        assert!(
            !stream_member_left(&api, "abrupt").await,
            "the member stayed"
        );
        for party in &mut p {
            party.ua.bye().await;
        }
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn hostile_messages_are_ignored_and_counted_without_dropping_the_stream() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let srv = server(&routes(), 40);
        let api = Api::new(&srv);
        let stub = HttpStub::start().await;
        let svc = AiService::start().await;
        let (mut p, _) = room_with_stream(&srv, &api, &stub, "hostile", &svc.url("/")).await;
        svc.started(0).await;
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let hostile = [
            "{not json".to_string(),
            "[1,2,3]".to_string(),
            json!({"event": "dance"}).to_string(),
            json!({"event": "playAudio", "media": {"contentType": "audio/x-l16", "sampleRate": 8000, "payload": "@@not base64@@"}}).to_string(),
            json!({"event": "playAudio", "media": {"contentType": "audio/x-l16", "sampleRate": 8000, "payload": b64(&[1, 2, 3])}}).to_string(),
            json!({"event": "playAudio", "media": {"contentType": "audio/ogg", "sampleRate": 48000, "payload": b64(&[0; 64])}}).to_string(),
            json!({"event": "checkpoint"}).to_string(),
            // Over the 64 KB limit.
            play_audio("audio/x-l16", 8000, &tone(AI, 8000, 5.0)),
        ];
        for text in &hostile {
            svc.send(0, Cmd::Text(text.clone()));
        }
        svc.send(0, Cmd::Binary(vec![0; 1000]));
        let refused = srv
            .metric_until("huddle_aistream_refused_messages_total", Duration::from_secs(5), |v| v >= 9.0)
            .await
            .unwrap_or(0.0);
        assert!(refused >= 9.0, "every hostile message counted ({refused})");
        let heard = talk_all(&mut p, 1.5).await;
        assert_share("customer", &heard[0], AGENT, true);
        assert_share("agent", &heard[1], CUSTOMER, true);
        assert_share("customer", &heard[0], AI, false);
        // Still the same socket, and a good message after all that is played.
        play_tone(&svc, 0, "audio/x-l16", 8000, AI, 3.0);
        let heard = talk_all(&mut p, 2.0).await;
        assert_share("customer", &heard[0], AI, true);
        assert_eq!(svc.count(), 1, "no reconnection");
        assert!(!svc.with(0, |c| c.ended));
        for party in &mut p {
            party.ua.bye().await;
        }
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn a_service_faster_than_real_time_is_bounded_and_played_at_real_time() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let srv = server(&routes(), 40);
        let api = Api::new(&srv);
        let stub = HttpStub::start().await;
        let svc = AiService::start().await;
        let (mut p, _) = room_with_stream(&srv, &api, &stub, "flood", &svc.url("/")).await;
        svc.started(0).await;
        // 70 s of audio at once: over the 60 s queue.
        play_tone(&svc, 0, "audio/x-l16", 8000, AI, 70.0);
        let degraded = stub
            .wait_until("/stream", Duration::from_secs(10), |r| {
                r.iter().any(|r| r.param("Event") == Some("DegradedStream"))
            })
            .await
            .expect("DegradedStream reported");
        let d = degraded
            .iter()
            .find(|r| r.param("Event") == Some("DegradedStream"))
            .unwrap();
        assert_eq!(d.param("Error"), Some("buffer_overflow"));
        let heard = talk_all(&mut p, 2.0).await;
        assert_share("customer", &heard[0], AGENT, true);
        assert_share("agent", &heard[1], CUSTOMER, true);
        assert_share("customer", &heard[0], AI, true);
        assert!(srv.log().contains("faster than real time"));
        // A checkpoint now marks the end of a full minute: not reached in a few seconds.
        svc.send(
            0,
            Cmd::Text(json!({"event": "checkpoint", "name": "end"}).to_string()),
        );
        talk_all(&mut p, 1.0).await;
        assert!(
            svc.with(0, |c| c.events("playedStream").is_empty()),
            "played at real time, not faster"
        );
        for party in &mut p {
            party.ua.bye().await;
        }
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn a_normal_close_by_the_service_ends_the_member() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let srv = server(&routes(), 40);
        let api = Api::new(&srv);
        let stub = HttpStub::start().await;
        let svc = AiService::start().await;
        let (mut p, call_uuid) =
            room_with_stream(&srv, &api, &stub, "closing", &svc.url("/")).await;
        svc.started(0).await;
        svc.send(0, Cmd::Close(CloseCode::Normal));
        stub.wait_until("/stream", Duration::from_secs(5), |r| {
            r.iter().any(|r| {
                r.param("Event") == Some("StopStream")
                    && r.param("CallUUID") == Some(call_uuid.as_str())
            })
        })
        .await
        .expect("StopStream reported");
        api.wait_json("name_closing/Participant/", Duration::from_secs(5), left)
            .await;
        assert_eq!(svc.count(), 1, "a normal close is not retried");
        pair_talks(&mut p, 1.0).await;
        for party in &mut p {
            party.ua.bye().await;
        }
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn joining_by_xml_streams_until_the_anchor_call_hangs_up() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let svc = AiService::start().await;
        let extra = format!(
            "{}[[route]]\nuser = \"^bot-(?P<mpc>[a-z0-9]+)$\"\n\
             xml = '<Response><MultiPartyCall role=\"ai-agent\" enterSound=\"none\" exitSound=\"none\" \
             aiAgentStreamServiceUrl=\"{}\" aiAgentStreamContentType=\"audio/x-mulaw;rate=8000\">$mpc</MultiPartyCall></Response>'\n",
            routes(),
            svc.url("/bot")
        );
        let srv = server(&extra, 40);
        let api = Api::new(&srv);
        let mut p = vec![
            join(srv.sip, "customer-xml", CUSTOMER).await,
            join(srv.sip, "agent-xml", AGENT).await,
        ];
        let mut anchor = join(srv.sip, "bot-xml", COACH).await;
        let start = svc.started(0).await;
        assert_eq!(start["start"]["mediaFormat"]["encoding"], "audio/x-mulaw");
        let listed = api
            .wait_json("name_xml/Participant/", Duration::from_secs(5), |v| {
                v["objects"].as_array().is_some_and(|o| o.len() == 3)
            })
            .await;
        let bot = listed["objects"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["role"] == "ai-agent")
            .cloned()
            .expect("the stream member is listed");
        assert_eq!(bot["call_uuid"], start["start"]["callId"], "the anchor call's uuid");
        play_tone(&svc, 0, "audio/x-mulaw", 8000, AI, 5.0);
        // The anchor call talks too: its RTP is not mixed, the stream is the member's voice.
        let (heard, _) = tokio::join!(
            talk_all(&mut p, 2.0),
            anchor.rtp.talk(anchor.media, COACH, Duration::from_secs(2))
        );
        assert_share("customer", &heard[0], AI, true);
        assert_share("customer", &heard[0], COACH, false);
        assert_share("customer", &heard[0], AGENT, true);
        let service_heard = svc.with(0, Conn::heard);
        let last = &service_heard[service_heard.len().saturating_sub(8000)..];
        assert_share("the AI service", last, CUSTOMER, true);
        assert_share("the AI service", last, AGENT, true);
        // The anchor hangs up: the member leaves and the socket closes.
        anchor.ua.bye().await;
        svc.wait(Duration::from_secs(5), |c| c[0].ended.then_some(())).await;
        api.wait_json("name_xml/Participant/", Duration::from_secs(5), left)
        .await;
        pair_talks(&mut p, 1.0).await;
        for party in &mut p {
            party.ua.bye().await;
        }
    })
    .await
    .expect("timed out");
}
