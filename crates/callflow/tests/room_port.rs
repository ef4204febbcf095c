//! The hand-over from a call's XML to the room service, with a stand-in room (the real MPC
//! implements the same trait). Real SIP, RTP and HTTP around it: a SIP service on loopback,
//! the test user agent, and the HTTP stub as the application.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use huddle_callflow::{
    member_news, CallContext, JoinRefused, JoinRequest, MediaSettings, MemberInput, MemberLink,
    Membership, RoomExit, Rooms, RouteAction, RouteRule, Router, TickAudio,
};
use huddle_media::ports::PortAllocator;
use huddle_sip::endpoint::EndpointConfig;
use huddle_sip::service::{ListenAddr, SipServiceConfig};
use huddle_sip::transaction::{TimerConfig, TransportKind};
use huddle_testkit::{detect, wav_tone, HttpStub, RtpPeer, SipUa};
use huddle_xml::{HttpMethod, Role, UrlWithMethod};
use tokio::sync::{mpsc, oneshot, watch};

/// A room that sends every member its own audio back, then lets it go after `stay`.
struct LoopbackRoom {
    stay: Duration,
    on_exit: Option<UrlWithMethod>,
    refuse: bool,
    joins: Arc<Mutex<Vec<JoinRequest>>>,
}

impl Rooms for LoopbackRoom {
    fn join(
        &self,
        request: JoinRequest,
        mut audio: Box<dyn TickAudio>,
    ) -> Pin<Box<dyn Future<Output = Result<Membership, JoinRefused>> + Send + '_>> {
        Box::pin(async move {
            self.joins.lock().unwrap().push(request.clone());
            if self.refuse {
                return Err(JoinRefused {
                    reason: "MPC is full".into(),
                });
            }
            let (to_room, mut room_in) = mpsc::channel(16);
            let (_room_out, from_room) = mpsc::channel(16);
            let (exit_tx, exit) = oneshot::channel();
            let (left, mut left_rx) = oneshot::channel();
            let stay = self.stay;
            let on_exit = self.on_exit.clone();
            tokio::spawn(async move {
                let until = tokio::time::sleep(stay);
                tokio::pin!(until);
                let mut ticker = tokio::time::interval(Duration::from_millis(20));
                let mut frame = [0i16; 160];
                loop {
                    tokio::select! {
                        _ = ticker.tick() => {
                            if let Some(n) = audio.receive(&mut frame) {
                                audio.send(&frame[..n]);
                            }
                        }
                        input = room_in.recv() => match input {
                            Some(MemberInput::Dtmf { .. }) => {}
                            None => return,
                        },
                        _ = &mut until => {
                            let _ = exit_tx.send(RoomExit::Continue {
                                on_exit,
                                params: vec![("MPCName".into(), "r1".into())],
                            });
                            return;
                        }
                        _ = &mut left_rx => return,
                    }
                }
            });
            Ok(Membership {
                member_id: huddle_roomport::MemberId(1),
                mpc_uuid: huddle_roomport::MpcUuid::from("m-1"),
                to_room: MemberLink::new(to_room, left, member_news().0),
                from_room,
                exit,
            })
        })
    }
}

async fn start(rooms: LoopbackRoom, xml: String) -> (SocketAddr, watch::Sender<bool>) {
    let (sip, events) = huddle_sip::service::start(SipServiceConfig {
        listen: vec![ListenAddr {
            transport: TransportKind::Udp,
            addr: "127.0.0.1:0".parse().unwrap(),
        }],
        endpoint: EndpointConfig {
            advertised_host: "127.0.0.1".into(),
            udp_port: None,
            tcp_port: None,
            user_agent: "huddle-test".into(),
            trunk: None,
            timers: TimerConfig::default(),
        },
        max_message_size: 65_535,
        access: huddle_sip::access::AccessPolicy::open(),
        limits: Default::default(),
    })
    .await
    .expect("SIP service");
    let addr = sip.bound()[0].addr;
    let http = huddle_events::HttpClient::unsigned();
    let (hangup_tx, hangup_all) = watch::channel(false);
    let base = 31_000 + (std::process::id() % 500) as u16 * 4;
    let ctx = Arc::new(CallContext {
        sip,
        router: Router::new(vec![RouteRule {
            user: regex::Regex::new("^room$").unwrap(),
            action: RouteAction::Xml(xml),
            max_duration: None,
            from_networks: None,
            latching: huddle_callflow::router::Latching::Sdp,
            srtp: huddle_callflow::router::SrtpMode::Optional,
        }]),
        ports: Arc::new(PortAllocator::new(base, base + 40)),
        media: MediaSettings {
            local_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            jitter_min_ms: 20,
            jitter_max_ms: 100,
            rtp_timeout: None,
            codecs: vec![huddle_sdp::PCMU, huddle_sdp::PCMA],
        },
        http: http.clone(),
        prompts: huddle_prompts::Prompts::new(
            http.reqwest().clone(),
            huddle_prompts::PromptConfig::default(),
        ),
        rooms: Some(Arc::new(rooms)),
        hangup_all,
        calls: Default::default(),
        recordings: huddle_callflow::manager::RecordingFiles {
            dir: std::env::temp_dir().join("huddle-room-port-recordings"),
            url_base: "http://127.0.0.1/v1/Account/MA/Recording/".to_string(),
        },
        ai_streams: huddle_aistream::StreamDeps::new(http.clone(), "MATEST".into()),
        webhooks: None,
        record_journal: None,
    });
    tokio::spawn(huddle_callflow::run(ctx, events));
    (addr, hangup_tx)
}

/// Talks a tone until BYE; returns what was heard.
async fn call_until_bye(sip: SocketAddr, tone: f64, limit: Duration) -> (Vec<i16>, bool) {
    let mut ua = SipUa::udp(sip).await;
    let mut rtp = RtpPeer::bind().await;
    let ok = ua
        .invite("room", &SipUa::sdp(rtp.port(), &[0, 101]))
        .await
        .expect("final response");
    assert_eq!(ok.status(), 200);
    ua.ack().await;
    let media = ok.sdp_audio().unwrap();
    let started = std::time::Instant::now();
    let mut heard = Vec::new();
    while started.elapsed() < limit {
        heard.extend(rtp.talk(media, tone, Duration::from_millis(100)).await);
        if let Some(m) = ua.recv(Duration::from_millis(1)).await {
            if m.start.starts_with("BYE ") {
                ua.reply_ok(&m).await;
                return (heard, true);
            }
        }
    }
    (heard, false)
}

#[tokio::test]
async fn multi_party_call_hands_audio_to_the_room_and_continues_at_on_exit_url() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let stub = HttpStub::start().await;
        stub.serve("/after.wav", 200, "audio/wav", wav_tone(600.0, 1.0, 8000));
        stub.serve_xml(
            "/exit",
            &format!("<Response><Play>{}</Play></Response>", stub.url("/after.wav")),
        );
        let joins = Arc::new(Mutex::new(Vec::new()));
        let room = LoopbackRoom {
            stay: Duration::from_millis(1500),
            on_exit: Some(UrlWithMethod {
                url: stub.url("/exit"),
                method: HttpMethod::Post,
            }),
            refuse: false,
            joins: joins.clone(),
        };
        let xml = r#"<Response><MultiPartyCall role="Agent" maxParticipants="5">r1</MultiPartyCall><Speak>never reached</Speak></Response>"#;
        let (sip, _shutdown) = start(room, xml.into()).await;
        let (heard, bye) = call_until_bye(sip, 1000.0, Duration::from_secs(10)).await;
        assert!(bye, "end of the on-exit document hangs up");
        // 1.5 s in the room hearing ourselves, then 1 s of the on-exit tone.
        assert!(detect(&heard[4000..8000], 1000.0), "the room's audio reaches the caller");
        let tail_start = heard.len().saturating_sub(8000);
        let after = &heard[tail_start..tail_start + 4000];
        assert!(detect(after, 600.0), "the on-exit document plays");
        let join = joins.lock().unwrap()[0].clone();
        assert_eq!(join.mpc.name, "r1");
        assert_eq!(join.mpc.role, Role::Agent);
        assert_eq!(join.mpc.max_participants, 5);
        assert_eq!(join.sample_rate, 8000);
        let exit = stub.requests_to("/exit");
        assert_eq!(exit.len(), 1);
        assert_eq!(exit[0].param("MPCName"), Some("r1"));
        assert_eq!(exit[0].param("CallStatus"), Some("in-progress"));
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn a_refused_join_continues_with_the_next_verb() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let stub = HttpStub::start().await;
        stub.serve("/next.wav", 200, "audio/wav", wav_tone(600.0, 1.0, 8000));
        let room = LoopbackRoom {
            stay: Duration::from_secs(60),
            on_exit: None,
            refuse: true,
            joins: Arc::new(Mutex::new(Vec::new())),
        };
        let xml = format!(
            r#"<Response><MultiPartyCall role="customer">r1</MultiPartyCall><Play>{}</Play></Response>"#,
            stub.url("/next.wav")
        );
        let (sip, _shutdown) = start(room, xml).await;
        let (heard, bye) = call_until_bye(sip, 1000.0, Duration::from_secs(10)).await;
        assert!(bye);
        assert!(detect(&heard[heard.len().saturating_sub(6000)..], 600.0));
        assert!(!detect(&heard, 1000.0), "no room, no echo of our own tone");
    })
    .await
    .expect("timed out");
}
