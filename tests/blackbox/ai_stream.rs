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
use huddle_events::signature::{V3, V3_NONCE};
use huddle_testkit::{tone_share, ulaw_decode, ulaw_encode, HttpStub, RtpPeer, SipUa, StubRequest};
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
    /// Stops reading the connection (and carrying out commands) for this long, as a
    /// service that hangs would.
    Stall(Duration),
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
        self.heard_between(None, None)
    }

    /// The media of one `track` (`inbound` or `outbound`), decoded like [`Conn::heard`].
    pub(super) fn heard_track(&self, track: &str) -> Vec<i16> {
        self.decoded(None, None, Some(track))
    }

    /// All media, at the stream's own rate (16 kHz frames kept whole, to look above 4 kHz).
    pub(super) fn heard_at_stream_rate(&self) -> Vec<i16> {
        self.decoded_at(None, None, None, false)
    }

    /// The media that arrived after `from` and before `to` (either open), decoded like
    /// [`Conn::heard`].
    fn heard_between(&self, from: Option<Instant>, to: Option<Instant>) -> Vec<i16> {
        self.decoded(from, to, None)
    }

    /// The media between `from` and `to` of `track` (any when None), decoded at 8 kHz.
    fn decoded(&self, from: Option<Instant>, to: Option<Instant>, track: Option<&str>) -> Vec<i16> {
        self.decoded_at(from, to, track, true)
    }

    /// The media between `from` and `to` of `track` (any when None), decoded; 16 kHz media
    /// is taken down to 8 kHz when `narrow`.
    fn decoded_at(
        &self,
        from: Option<Instant>,
        to: Option<Instant>,
        track: Option<&str>,
        narrow: bool,
    ) -> Vec<i16> {
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
        for (at, m) in self.events("media") {
            if from.is_some_and(|f| at < f) || to.is_some_and(|t| at > t) {
                continue;
            }
            if track.is_some_and(|t| m["media"]["track"] != t) {
                continue;
            }
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
            if rate == 16000 && narrow {
                pcm.extend(samples.iter().step_by(2));
            } else {
                pcm.extend(samples);
            }
        }
        pcm
    }
}

/// One accepted connection (plain or TLS): records the upgrade and every message, and
/// carries out the test's commands.
async fn serve_connection<S>(stream: S, shared: Arc<Mutex<Vec<Conn>>>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
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
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
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
                Some(Cmd::Stall(d)) => tokio::time::sleep(d).await,
                Some(Cmd::Abort) | None => break,
            },
        }
    }
    shared.lock().unwrap()[index].ended = true;
}

/// The AI service.
pub(super) struct AiService {
    addr: SocketAddr,
    conns: Arc<Mutex<Vec<Conn>>>,
}

impl AiService {
    pub(super) async fn start() -> AiService {
        Self::start_on(None).await
    }

    /// A service behind TLS with the test PKI's certificate (wss://).
    async fn start_tls(acceptor: tokio_rustls::TlsAcceptor) -> AiService {
        Self::start_on(Some(acceptor)).await
    }

    async fn start_on(tls: Option<tokio_rustls::TlsAcceptor>) -> AiService {
        Self::serve(TcpListener::bind("127.0.0.1:0").await.unwrap(), tls)
    }

    /// A service whose connections have a receive buffer of a few kilobytes, so that when it
    /// stops reading, huddle's side of the socket fills within seconds rather than the
    /// megabytes loopback sockets otherwise absorb.
    async fn start_small_window() -> AiService {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        Self::serve(socket.listen(64).unwrap(), None)
    }

    fn serve(listener: TcpListener, tls: Option<tokio_rustls::TlsAcceptor>) -> AiService {
        let addr = listener.local_addr().unwrap();
        let conns: Arc<Mutex<Vec<Conn>>> = Arc::default();
        let shared = conns.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let shared = shared.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                serve_connection(stream, shared).await;
                            }
                        }
                        None => serve_connection(tcp, shared).await,
                    }
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
pub(super) async fn add_stream(api: &Api, mpc: &str, params: Value) -> Value {
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

/// `playAudio` in a type and rate other than the stream's is converted to the room's rate:
/// played at the wrong rate, the tone would come out an octave off and miss the detector.
async fn play_other_type(stream_type: &str, play_type: &str, play_rate: u32) {
    let srv = server(&routes(), 20);
    let svc = AiService::start().await;
    let api = Api::new(&srv);
    let mut customer = join(srv.sip, "customer-mixed", CUSTOMER).await;
    add_stream(
        &api,
        "mixed",
        json!({"ai_agent_stream_service_url": svc.url("/"), "ai_agent_stream_content_type": stream_type}),
    )
    .await;
    svc.started(0).await;
    play_tone(&svc, 0, play_type, play_rate, AI, 4.0);
    let heard = customer
        .rtp
        .talk(customer.media, CUSTOMER, Duration::from_secs(3))
        .await;
    let last = &heard[heard.len() - 8000..];
    let who = format!("customer ({play_type} at {play_rate} Hz on a {stream_type} stream)");
    assert_share(&who, last, AI, true);
    assert_share(&who, last, AI / 2.0, false);
    customer.ua.bye().await;
}

#[tokio::test]
async fn play_audio_in_any_supported_type_and_rate_is_converted_to_the_room() {
    tokio::time::timeout(Duration::from_secs(60), async {
        play_other_type("audio/x-mulaw;rate=8000", "audio/x-l16", 16000).await;
        play_other_type("audio/x-l16;rate=16000", "audio/x-mulaw", 8000).await;
        play_other_type("audio/x-l16;rate=16000", "audio/x-l16", 8000).await;
    })
    .await
    .expect("timed out");
}

/// A customer and an agent talk (two seconds at least); each must hear the other in the last second.
async fn pair_talks(p: &mut [Party], secs: f64) {
    // What is measured is the last second; a second before it lets the room take the new talk
    // spurt in (jitter buffer, voice activity) even on a loaded machine.
    let heard = talk_all(p, secs.max(2.0)).await;
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
    let (p, call) = room_with_stream_call(srv, api, stub, mpc, url).await;
    (p, call["call_uuid"].as_str().unwrap().to_string())
}

/// [`room_with_stream`], returning the add-participant answer's `calls[0]`.
async fn room_with_stream_call(
    srv: &huddle_testkit::ServerProcess,
    api: &Api,
    stub: &HttpStub,
    mpc: &str,
    url: &str,
) -> (Vec<Party>, Value) {
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
    (p, call)
}

/// What every stream status callback of one stream says (spec/ai-stream.md §6: the union of
/// both vocabularies' fields, plus the MPC and the member).
struct StreamFacts {
    call_uuid: String,
    stream_id: String,
    member_id: String,
    mpc_uuid: String,
    mpc_name: String,
    service_url: String,
    content_type: String,
    direction: &'static str,
}

/// Checks one stream status callback: its fields, and its V3 signature as a Plivo SDK's
/// validator computes it for the POST form at `url`.
fn assert_stream_callback(r: &StubRequest, url: &str, facts: &StreamFacts, event: &str) {
    assert_eq!(r.method, "POST", "{r:?}");
    assert_eq!(r.param("Event"), Some(event), "{r:?}");
    assert_eq!(r.param("CallUUID"), Some(facts.call_uuid.as_str()));
    assert_eq!(r.param("StreamID"), Some(facts.stream_id.as_str()));
    assert_eq!(r.param("MemberID"), Some(facts.member_id.as_str()));
    assert_eq!(r.param("MPCUUID"), Some(facts.mpc_uuid.as_str()));
    assert_eq!(r.param("MPCName"), Some(facts.mpc_name.as_str()));
    assert_eq!(r.param("ServiceURL"), Some(facts.service_url.as_str()));
    assert_eq!(r.param("ContentType"), Some(facts.content_type.as_str()));
    assert_eq!(r.param("Direction"), Some(facts.direction));
    assert!(
        r.param("From").is_some() && r.param("To").is_some(),
        "{r:?}"
    );
    assert!(r.param("Error").is_some() && r.param("StatusReason").is_some());
    assert!(
        r.param("Duration")
            .is_some_and(|d| d.parse::<u64>().is_ok()),
        "{r:?}"
    );
    // Plivo's timestamp form, in UTC: 2026-12-05 06:40:00+00:00.
    let ts = r.param("Timestamp").expect("Timestamp");
    let b = ts.as_bytes();
    assert!(
        ts.len() == 25
            && b[4] == b'-'
            && b[7] == b'-'
            && b[10] == b' '
            && b[13] == b':'
            && b[16] == b':'
            && ts.ends_with("+00:00")
            && ts[..4].parse::<u32>().is_ok_and(|y| y >= 2024),
        "{ts}"
    );
    let nonce = r.header(V3_NONCE).expect("a V3 nonce");
    let expected = huddle_events::signature::v3_signature(
        TOKEN,
        huddle_xml::HttpMethod::Post,
        url,
        &r.form,
        nonce,
    );
    assert_eq!(r.header(V3), Some(expected.as_str()), "{r:?}");
}

#[tokio::test]
async fn stream_members_added_by_the_api_take_no_rtp_ports() {
    tokio::time::timeout(Duration::from_secs(60), async {
        // Four ports: two RTP/RTCP pairs, two calls.
        let srv = server(&routes(), 4);
        let api = Api::new(&srv);
        let svc = AiService::start().await;
        let customer = join(srv.sip, "customer-ports", CUSTOMER).await;
        for i in 0..3 {
            add_stream(
                &api,
                "ports",
                json!({"ai_agent_stream_service_url": svc.url(&format!("/{i}"))}),
            )
            .await;
        }
        svc.wait(Duration::from_secs(10), |c| {
            (c.len() == 3 && c.iter().all(|c| !c.events("start").is_empty())).then_some(())
        })
        .await;
        // Three streams later the second pair is still free for a call...
        let agent = join(srv.sip, "agent-ports", AGENT).await;
        // ...and the range really holds two calls: a third is refused for want of ports.
        let mut ua = SipUa::udp(srv.sip).await;
        let rtp = RtpPeer::bind().await;
        let refused = ua
            .invite("supervisor-ports", &SipUa::sdp(rtp.port(), &[0, 101]))
            .await
            .expect("a final response");
        assert_eq!(refused.status(), 503, "{refused:?}");
        let mut p = vec![customer, agent];
        pair_talks(&mut p, 1.0).await;
        for party in &mut p {
            party.ua.bye().await;
        }
    })
    .await
    .expect("timed out");
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
async fn a_wss_service_with_a_trusted_certificate_streams_both_ways() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let pki = huddle_testkit::TestPki::new();
        let svc = AiService::start_tls(pki.acceptor()).await;
        // The test CA stands in for the system's roots (rustls-native-certs reads
        // SSL_CERT_FILE), for the server process only.
        let dir = std::env::temp_dir().join(format!(
            "huddle-ai-wss-{}-{}",
            std::process::id(),
            svc.addr.port()
        ));
        let files = pki.write(&dir);
        let srv = huddle_testkit::ServerProcess::start_env(
            std::path::Path::new(env!("CARGO_BIN_EXE_huddle")),
            &routes(),
            20,
            &[("SSL_CERT_FILE", files.ca.to_str().unwrap())],
        );
        let api = Api::new(&srv);
        let mut customer = join(srv.sip, "customer-wss", CUSTOMER).await;
        let url = format!("wss://127.0.0.1:{}/secure?t=1", svc.addr.port());
        add_stream(&api, "wss", json!({"ai_agent_stream_service_url": url})).await;
        svc.started(0).await;
        svc.with(0, |c| {
            // Signed for the https form of the URL, as Plivo's receivers check it.
            let host = c.header("host").unwrap();
            let nonce = c.header("X-Plivo-Signature-V3-Nonce").expect("nonce");
            let expected = huddle_events::signature::v3_signature(
                TOKEN,
                huddle_xml::HttpMethod::Get,
                &format!("https://{host}{}", c.uri),
                &[],
                nonce,
            );
            assert_eq!(c.header("X-Plivo-Signature-V3"), Some(expected.as_str()));
        });
        play_tone(&svc, 0, "audio/x-l16", 8000, AI, 4.0);
        let heard = customer
            .rtp
            .talk(customer.media, CUSTOMER, Duration::from_secs(3))
            .await;
        assert_share("customer", &heard[heard.len() - 8000..], AI, true);
        let pcm = svc.with(0, Conn::heard);
        assert_share("the AI service", &pcm[pcm.len() - 8000..], CUSTOMER, true);
        customer.ua.bye().await;
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await
    .expect("timed out");
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
            assert_eq!(one.param("StatusReason"), Some("connection_failed"));
            // Retried with backoff: 250 ms before the first retry, twice that before the next.
            let at: Vec<Instant> = dropped
                .iter()
                .filter(|r| {
                    r.param("CallUUID") == Some(call_uuid.as_str())
                        && r.param("Event") == Some("DroppedStream")
                })
                .map(|r| r.received)
                .collect();
            let (first, second) = (at[1] - at[0], at[2] - at[1]);
            assert!(
                first >= Duration::from_millis(200) && second >= Duration::from_millis(450),
                "{mpc}: retries after {first:?} and {second:?}"
            );
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
        pair_talks(&mut p, 2.0).await;
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

/// A service that stops reading for eight seconds: huddle's socket and its bounded outbox
/// fill, the frames that do not fit are dropped and counted under the stream, the pair in the
/// room hears each other all along with the room's ticks on time, and once the service reads
/// again it gets fresh media on the same connection.
#[tokio::test]
async fn a_stalled_service_loses_its_own_frames_and_the_room_never_notices() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let srv = server(&routes(), 40);
        let api = Api::new(&srv);
        let stub = HttpStub::start().await;
        let svc = AiService::start_small_window().await;
        let (mut p, _) = room_with_stream(&srv, &api, &stub, "stalled", &svc.url("/")).await;
        svc.started(0).await;
        pair_talks(&mut p, 2.0).await;
        let dropped =
            "huddle_aistream_frames_dropped_total{direction=\"to_service\",what=\"media\"}";
        let before = srv.metric(dropped);
        let late_before = srv.metric("huddle_mixer_ticks_skipped_total");
        svc.send(0, Cmd::Stall(Duration::from_secs(8)));
        let stalled_at = Instant::now();
        // The pair talks through the stall, in four windows, hearing each other in each.
        for _ in 0..4 {
            pair_talks(&mut p, 1.5).await;
        }
        let lost = srv
            .metric_until(dropped, Duration::from_secs(5), |n| n > before)
            .await
            .unwrap_or(before)
            - before;
        assert!(
            lost > 0.0,
            "media frames that did not fit while the service stalled are counted ({lost})"
        );
        assert_eq!(
            srv.metric("huddle_mixer_ticks_skipped_total"),
            late_before,
            "no mixing tick fell behind"
        );
        // After the stall the same connection receives media sent after it, and the member
        // is still in the room.
        svc.wait(Duration::from_secs(15), |c| {
            c[0].events("media")
                .iter()
                .any(|(at, _)| *at > stalled_at + Duration::from_secs(9))
                .then_some(())
        })
        .await;
        assert_eq!(svc.count(), 1, "no reconnection was needed");
        assert!(
            !stream_member_left(&api, "stalled").await,
            "the member stayed"
        );
        for party in &mut p {
            party.ua.bye().await;
        }
    })
    .await
    .expect("timed out");
}

/// The service sends `messages`, each ignored as `kind`: every one is counted under its
/// kind, the first is reported as `DegradedStream` with the kind as `StatusReason` (once per
/// connection, however many follow), the socket is kept, the pair hears each other
/// throughout, and good audio sent after them is played.
async fn hostile_case(mpc: &str, kind: &str, messages: Vec<Cmd>) {
    let srv = server(&routes(), 40);
    let api = Api::new(&srv);
    let stub = HttpStub::start().await;
    let svc = AiService::start().await;
    let (mut p, call_uuid) = room_with_stream(&srv, &api, &stub, mpc, &svc.url("/")).await;
    svc.started(0).await;
    let sent = messages.len();
    for m in messages {
        svc.send(0, m);
    }
    let metric = format!("huddle_aistream_refused_messages_total{{kind=\"{kind}\"}}");
    let refused = srv
        .metric_until(&metric, Duration::from_secs(5), |v| v >= sent as f64)
        .await
        .unwrap_or(0.0);
    assert_eq!(refused, sent as f64, "{kind}: every message counted");
    let reported = stub
        .wait_until("/stream", Duration::from_secs(5), |r| {
            r.iter().any(|r| r.param("Event") == Some("DegradedStream"))
        })
        .await
        .unwrap_or_else(|| panic!("{kind}: DegradedStream reported"));
    let degraded: Vec<_> = reported
        .iter()
        .filter(|r| r.param("Event") == Some("DegradedStream"))
        .collect();
    assert_eq!(degraded[0].param("StatusReason"), Some(kind));
    assert_eq!(degraded[0].param("CallUUID"), Some(call_uuid.as_str()));
    assert!(
        degraded[0]
            .param("Error")
            .is_some_and(|e| e.contains(kind) && e.len() < 300),
        "{kind}: a short reason naming the kind: {:?}",
        degraded[0].param("Error")
    );
    assert!(
        srv.log().contains("message from the AI service ignored"),
        "{kind}: logged"
    );
    let heard = talk_all(&mut p, 1.5).await;
    assert_share("customer", &heard[0], AGENT, true);
    assert_share("agent", &heard[1], CUSTOMER, true);
    assert_share("customer", &heard[0], AI, false);
    // However many came, a second and a half later it is still one report.
    let degraded = stub
        .requests_to("/stream")
        .iter()
        .filter(|r| r.param("Event") == Some("DegradedStream"))
        .count();
    assert_eq!(degraded, 1, "{kind}: reported once per connection");
    // Still the same socket, and a good message after all that is played.
    play_tone(&svc, 0, "audio/x-l16", 8000, AI, 3.0);
    let heard = talk_all(&mut p, 2.0).await;
    assert_share("customer", &heard[0], AI, true);
    assert_share("customer", &heard[0], AGENT, true);
    assert_share("agent", &heard[1], CUSTOMER, true);
    assert_eq!(svc.count(), 1, "{kind}: no reconnection");
    assert!(!svc.with(0, |c| c.ended));
    for party in &mut p {
        party.ua.bye().await;
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn malformed_json_is_ignored_counted_and_reported() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let messages = [
            "{not json",
            "[1,2,3]",
            "\"playAudio\"",
            "{\"event\": 7}",
            "",
        ]
        .iter()
        .map(|t| Cmd::Text(t.to_string()))
        .collect();
        hostile_case("malformed", "malformed", messages).await;
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn unknown_events_are_ignored_counted_and_reported() {
    tokio::time::timeout(Duration::from_secs(60), async {
        // A long unknown name is quoted only in part.
        let long = "x".repeat(20_000);
        let messages = ["dance", "sendDTMF2", long.as_str()]
            .iter()
            .map(|e| Cmd::Text(json!({"event": e}).to_string()))
            .collect();
        hostile_case("unknown", "unknown_event", messages).await;
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn oversized_messages_are_ignored_counted_and_reported() {
    tokio::time::timeout(Duration::from_secs(60), async {
        // Over the protocol's 64 KB, under the socket's limit: dropped whole.
        let messages = vec![
            Cmd::Text(play_audio("audio/x-l16", 8000, &tone(AI, 8000, 5.0))),
            Cmd::Text(json!({"event": "checkpoint", "name": "n".repeat(70_000)}).to_string()),
        ];
        hostile_case("oversized", "oversized", messages).await;
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn mis_encoded_payloads_are_ignored_counted_and_reported() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let play = |payload: String| {
            Cmd::Text(
                json!({"event": "playAudio", "media": {"contentType": "audio/x-l16",
                    "sampleRate": 8000, "payload": payload}})
                .to_string(),
            )
        };
        // Not base64; an odd number of bytes for 16-bit samples.
        let messages = vec![play("@@not base64@@".into()), play(b64(&[1, 2, 3]))];
        hostile_case("encoded", "bad_payload", messages).await;
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn unsupported_types_missing_fields_and_binary_frames_are_ignored_and_reported() {
    tokio::time::timeout(Duration::from_secs(60), async {
        hostile_case(
            "badtype",
            "bad_content_type",
            vec![
                Cmd::Text(
                    json!({"event": "playAudio", "media": {"contentType": "audio/ogg",
                        "sampleRate": 48000, "payload": b64(&[0; 64])}})
                    .to_string(),
                ),
                Cmd::Text(
                    json!({"event": "playAudio", "media": {"contentType": "audio/x-mulaw",
                        "sampleRate": 16000, "payload": b64(&[0; 64])}})
                    .to_string(),
                ),
            ],
        )
        .await;
        hostile_case(
            "badfield",
            "bad_field",
            vec![
                Cmd::Text(json!({"event": "checkpoint"}).to_string()),
                Cmd::Text(json!({"event": "playAudio"}).to_string()),
            ],
        )
        .await;
        hostile_case("binary", "binary", vec![Cmd::Binary(vec![0; 1000])]).await;
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn a_message_over_the_socket_limit_drops_the_connection_and_it_reconnects() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let srv = server(&routes(), 40);
        let api = Api::new(&srv);
        let stub = HttpStub::start().await;
        let svc = AiService::start().await;
        let (mut p, call_uuid) = room_with_stream(&srv, &api, &stub, "huge", &svc.url("/")).await;
        svc.started(0).await;
        // Two megabytes in one text message: the socket refuses it without buffering it whole.
        svc.send(
            0,
            Cmd::Text(format!(
                "{{\"event\":\"playAudio\",\"x\":\"{}\"}}",
                "a".repeat(2 << 20)
            )),
        );
        let start = svc.started(1).await;
        assert_eq!(start["sequenceNumber"], 1);
        let dropped = stub
            .wait_until("/stream", Duration::from_secs(5), |r| {
                r.iter().any(|r| r.param("Event") == Some("DroppedStream"))
            })
            .await
            .expect("DroppedStream reported");
        let d = dropped
            .iter()
            .find(|r| r.param("Event") == Some("DroppedStream"))
            .unwrap();
        assert_eq!(d.param("CallUUID"), Some(call_uuid.as_str()));
        assert_eq!(d.param("StatusReason"), Some("connection_failed"));
        assert!(
            d.param("Error").is_some_and(|e| !e.is_empty()),
            "a reason: {:?}",
            d.param("Error")
        );
        assert!(srv.metric("huddle_aistream_failures_total") >= 1.0);
        pair_talks(&mut p, 1.0).await;
        play_tone(&svc, 1, "audio/x-l16", 8000, AI, 3.0);
        let heard = talk_all(&mut p, 2.0).await;
        assert_share("customer", &heard[0], AI, true);
        assert_share("customer", &heard[0], AGENT, true);
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
        assert_eq!(d.param("StatusReason"), Some("buffer_overflow"));
        let dropped = srv
            .metric_until(
                "huddle_aistream_play_dropped_samples_total",
                Duration::from_secs(5),
                |v| v > 0.0,
            )
            .await
            .unwrap_or(0.0);
        // Ten of the seventy seconds did not fit.
        assert!(dropped >= 8.0 * 8000.0, "the excess is counted ({dropped})");
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
        let url = svc.url("/closing?x=1");
        let (mut p, call) = room_with_stream_call(&srv, &api, &stub, "closing", &url).await;
        let start = svc.started(0).await;
        assert_eq!(start["start"]["streamId"], call["stream_id"]);
        let (_, mpc) = api.get("name_closing/").await;
        let facts = StreamFacts {
            call_uuid: call["call_uuid"].as_str().unwrap().into(),
            stream_id: call["stream_id"].as_str().unwrap().into(),
            member_id: call["member_id"].as_str().unwrap().into(),
            mpc_uuid: mpc["mpc_uuid"].as_str().expect("mpc_uuid").into(),
            mpc_name: "closing".into(),
            service_url: url.clone(),
            content_type: "audio/x-l16;rate=8000".into(),
            direction: "outbound",
        };
        pair_talks(&mut p, 1.0).await;
        svc.send(0, Cmd::Close(CloseCode::Normal));
        let reported = stub
            .wait_until("/stream", Duration::from_secs(5), |r| {
                r.iter().any(|r| r.param("Event") == Some("StopStream"))
            })
            .await
            .expect("StopStream reported");
        let events: Vec<&str> = reported.iter().filter_map(|r| r.param("Event")).collect();
        assert_eq!(events, ["StartStream", "StopStream"], "in order, once each");
        let cb_url = stub.url("/stream");
        assert_stream_callback(&reported[0], &cb_url, &facts, "StartStream");
        assert_eq!(reported[0].param("Error"), Some(""));
        assert_stream_callback(&reported[1], &cb_url, &facts, "StopStream");
        assert_eq!(reported[1].param("Error"), Some(""));
        assert_eq!(reported[1].param("StatusReason"), Some("completed"));
        assert!(
            reported[1]
                .param("Duration")
                .unwrap()
                .parse::<u64>()
                .unwrap()
                >= 1,
            "the stream lasted over a second"
        );
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

/// Routes of [`routes`] plus `relay-<role>-<mpc>`, which relays its digits, and MPC status
/// callbacks to `events`.
fn routes_with_relay(events: &str) -> String {
    format!(
        "[[route]]\nuser = \"^relay-(?P<role>agent|customer)-(?P<mpc>[a-z0-9]+)$\"\n\
         xml = '<Response><MultiPartyCall role=\"$role\" relayDTMFInputs=\"true\" enterSound=\"none\" exitSound=\"none\" stayAlone=\"true\" statusCallbackUrl=\"{events}\">$mpc</MultiPartyCall></Response>'\n\
         [[route]]\nuser = \"^(?P<role>agent|customer|supervisor)-(?P<mpc>[a-z0-9]+)$\"\n\
         xml = '<Response><MultiPartyCall role=\"$role\" enterSound=\"none\" exitSound=\"none\" stayAlone=\"true\" statusCallbackUrl=\"{events}\">$mpc</MultiPartyCall></Response>'\n"
    )
}

#[tokio::test]
async fn digits_relayed_in_the_room_reach_the_service_as_dtmf_events() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let stub = HttpStub::start().await;
        let srv = server(&routes_with_relay(&stub.url("/mpc")), 40);
        let api = Api::new(&srv);
        let svc = AiService::start().await;
        let mut p = vec![
            join(srv.sip, "relay-customer-keys", CUSTOMER).await,
            join(srv.sip, "agent-keys", AGENT).await,
        ];
        let call = add_stream(
            &api,
            "keys",
            json!({"ai_agent_stream_service_url": svc.url("/"),
                   "ai_agent_stream_extra_headers": "tenant=t9"}),
        )
        .await;
        svc.started(0).await;
        let (customer_media, agent_media) = (p[0].media, p[1].media);
        p[0].rtp.send_dtmf(customer_media, 5).await;
        p[0].rtp.send_dtmf(customer_media, 11).await;
        let digits = svc
            .wait(Duration::from_secs(5), |c| {
                let d = c[0].events("dtmf");
                (d.len() >= 2).then_some(d)
            })
            .await;
        let sent_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let names: Vec<&str> = digits
            .iter()
            .map(|(_, m)| m["dtmf"]["digit"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["5", "#"], "each digit once, in order");
        for (_, m) in &digits {
            assert_eq!(m["streamId"], call["stream_id"]);
            assert_eq!(m["dtmf"]["track"], "inbound");
            assert_eq!(m["extra_headers"], "tenant=t9");
            let ts: u64 = m["dtmf"]["timestamp"].as_str().unwrap().parse().unwrap();
            assert!(ts <= sent_at && ts + 10_000 > sent_at, "epoch ms: {ts}");
            assert!(m["sequenceNumber"].as_u64().unwrap() > 1);
        }
        // The agent does not relay its digits: the service gets none of them.
        p[1].rtp.send_dtmf(agent_media, 9).await;
        pair_talks(&mut p, 1.0).await;
        assert_eq!(
            svc.with(0, |c| c.events("dtmf").len()),
            2,
            "only relayed digits"
        );
        for party in &mut p {
            party.ua.bye().await;
        }
    })
    .await
    .expect("timed out");
}

/// What the service heard of `freq` between two instants (its media after `from` + 400 ms,
/// so that the change being tested has reached it).
fn service_share(svc: &AiService, from: Instant, to: Instant, freq: f64) -> f64 {
    let pcm = svc.with(0, |c| {
        c.heard_between(Some(from + Duration::from_millis(400)), Some(to))
    });
    assert!(
        pcm.len() >= 4000,
        "half a second of media at least ({})",
        pcm.len()
    );
    tone_share(&pcm, freq)
}

#[tokio::test]
async fn the_stream_member_is_muted_held_and_kicked_like_any_other() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let stub = HttpStub::start().await;
        let srv = server(&routes_with_relay(&stub.url("/mpc")), 40);
        let api = Api::new(&srv);
        let svc = AiService::start().await;
        let (mut p, call) = room_with_stream_call(&srv, &api, &stub, "ops", &svc.url("/")).await;
        let member_id = call["member_id"].as_str().unwrap().to_string();
        let member = format!("name_ops/Participant/{member_id}/");
        svc.started(0).await;
        play_tone(&svc, 0, "audio/x-l16", 8000, AI, 40.0);
        // Talks for 1.5 s; what the customer heard, and when.
        async fn phase(p: &mut [Party]) -> (Vec<Vec<i16>>, Instant, Instant) {
            let from = Instant::now();
            let heard = talk_all(p, 1.5).await;
            (heard, from, Instant::now())
        }
        let (heard, from, to) = phase(&mut p).await;
        assert_share("customer", &heard[0], AI, true);
        assert!(
            service_share(&svc, from, to, CUSTOMER) > 0.05,
            "the service hears the room"
        );

        // Muted: nobody hears it; it still hears the room.
        let (status, reply) = api.send("POST", &member, Some(json!({"mute": true}))).await;
        assert_eq!(status, 200, "{reply}");
        let (heard, from, to) = phase(&mut p).await;
        assert_share("customer", &heard[0], AI, false);
        assert_share("agent", &heard[1], AI, false);
        assert_share("customer", &heard[0], AGENT, true);
        assert!(
            service_share(&svc, from, to, CUSTOMER) > 0.05,
            "a muted member still hears"
        );
        let (_, listed) = api.get(&member).await;
        assert_eq!(listed["mute"], true);
        let (status, _) = api
            .send("POST", &member, Some(json!({"mute": false})))
            .await;
        assert_eq!(status, 200);
        let (heard, _, _) = phase(&mut p).await;
        assert_share("customer", &heard[0], AI, true);

        // Held: not heard, and it hears nothing of the room; unhold restores both.
        let (status, _) = api.send("POST", &member, Some(json!({"hold": true}))).await;
        assert_eq!(status, 200);
        let (heard, from, to) = phase(&mut p).await;
        assert_share("customer", &heard[0], AI, false);
        assert_share("agent", &heard[1], AI, false);
        assert_share("customer", &heard[0], AGENT, true);
        assert_share("agent", &heard[1], CUSTOMER, true);
        assert!(
            service_share(&svc, from, to, CUSTOMER) < 0.005,
            "a held member hears nothing of the room"
        );
        assert!(
            service_share(&svc, from, to, AGENT) < 0.005,
            "a held member hears nothing of the room"
        );
        let (_, listed) = api.get(&member).await;
        assert_eq!(listed["hold"], true);
        let (status, _) = api
            .send("POST", &member, Some(json!({"hold": false})))
            .await;
        assert_eq!(status, 200);
        let (heard, from, to) = phase(&mut p).await;
        assert_share("customer", &heard[0], AI, true);
        assert!(
            service_share(&svc, from, to, CUSTOMER) > 0.05,
            "unheld, it hears again"
        );

        // Kicked: the socket is closed normally, the member has left and is reported so.
        let (status, body) = api.send("DELETE", &member, None).await;
        assert_eq!((status, body), (204, Value::Null));
        svc.wait(Duration::from_secs(5), |c| c[0].ended.then_some(()))
            .await;
        let (_, listed) = api.get(&member).await;
        assert_eq!(
            listed["exit_cause"], "Kicked Out of Multiparty Call",
            "{listed}"
        );
        api.wait_json("name_ops/Participant/", Duration::from_secs(5), left)
            .await;
        let events = stub
            .wait_until("/mpc", Duration::from_secs(5), |r| {
                r.iter().any(|r| {
                    r.param("EventName") == Some("ParticipantExit")
                        && r.param("MemberID") == Some(member_id.as_str())
                })
            })
            .await
            .expect("ParticipantExit for the stream member");
        let exit = events
            .iter()
            .find(|r| {
                r.param("EventName") == Some("ParticipantExit")
                    && r.param("MemberID") == Some(member_id.as_str())
            })
            .unwrap();
        assert_eq!(exit.param("ParticipantRole"), Some("ai-agent"));
        assert_eq!(
            exit.param("ParticipantCallUUID"),
            call["call_uuid"].as_str()
        );
        assert!(
            events
                .iter()
                .any(|r| r.param("EventName") == Some("ParticipantJoin")
                    && r.param("MemberID") == Some(member_id.as_str())
                    && r.param("ParticipantRole") == Some("ai-agent")),
            "its join was reported too"
        );
        stub.wait_until("/stream", Duration::from_secs(5), |r| {
            r.iter().any(|r| r.param("Event") == Some("StopStream"))
        })
        .await
        .expect("StopStream reported");
        assert_eq!(svc.count(), 1, "a kicked member does not reconnect");
        let heard = talk_all(&mut p, 1.5).await;
        assert_share("customer", &heard[0], AI, false);
        assert_share("customer", &heard[0], AGENT, true);
        assert_share("agent", &heard[1], CUSTOMER, true);
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
        let stub = HttpStub::start().await;
        let extra = format!(
            "{}[[route]]\nuser = \"^bot-(?P<mpc>[a-z0-9]+)$\"\n\
             xml = '<Response><MultiPartyCall role=\"ai-agent\" enterSound=\"none\" exitSound=\"none\" \
             aiAgentStreamServiceUrl=\"{}\" aiAgentStreamContentType=\"audio/x-mulaw;rate=8000\" aiAgentStreamStatusCallbackUrl=\"{}\">$mpc</MultiPartyCall></Response>'\n",
            routes(),
            svc.url("/bot"),
            stub.url("/stream")
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
        // The stream's callbacks name the anchor call, which came in.
        let (_, mpc) = api.get("name_xml/").await;
        let facts = StreamFacts {
            call_uuid: bot["call_uuid"].as_str().unwrap().into(),
            stream_id: start["start"]["streamId"].as_str().unwrap().into(),
            member_id: bot["member_id"].as_str().unwrap().into(),
            mpc_uuid: mpc["mpc_uuid"].as_str().unwrap().into(),
            mpc_name: "xml".into(),
            service_url: svc.url("/bot"),
            content_type: "audio/x-mulaw;rate=8000".into(),
            direction: "inbound",
        };
        let reported = stub
            .wait_until("/stream", Duration::from_secs(5), |r| !r.is_empty())
            .await
            .expect("StartStream reported");
        assert_stream_callback(&reported[0], &stub.url("/stream"), &facts, "StartStream");
        // Whatever reached the anchor while it was being joined is read first.
        anchor
            .rtp
            .talk(anchor.media, COACH, Duration::from_millis(300))
            .await;
        play_tone(&svc, 0, "audio/x-mulaw", 8000, AI, 5.0);
        // The anchor call talks too: its RTP is not mixed, the stream is the member's voice.
        let (heard, anchor_heard) = tokio::join!(
            talk_all(&mut p, 2.0),
            anchor.rtp.talk(anchor.media, COACH, Duration::from_secs(2))
        );
        // Nor is it sent anything: the anchor's leg stays quiet, not even silence.
        assert!(
            anchor_heard.is_empty(),
            "the anchor call got {} samples of RTP",
            anchor_heard.len()
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
