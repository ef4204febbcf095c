//! Assembles huddle: SIP service, call manager, HTTP API, and the shutdown drain.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use huddle_callflow::router::AuthRoutes;
use huddle_callflow::{CallContext, MediaSettings, RouteAction, RouteRule, Router};
use huddle_config::Config;
use huddle_config::ListenTransport;
use huddle_media::ports::PortAllocator;
use huddle_sip::access::AccessPolicy;
use huddle_sip::auth::{Credentials, InboundAuth};
use huddle_sip::endpoint::{EndpointConfig, TrunkConfig};
use huddle_sip::headers::UriTarget;
use huddle_sip::limits::{CallLimits, ConnectionLimits, SipLimits};
use huddle_sip::service::{ListenAddr, SipServiceConfig};
use huddle_sip::tls::{root_store, SipTls, TlsServerName as ServerName};
use huddle_sip::transaction::{TimerConfig, TransportKind};
use tokio::sync::watch;

/// Runs the server until SIGTERM or SIGINT, then drains: new INVITEs get 503, live calls get
/// `server.shutdown_grace_secs` to finish before they are hung up with BYE.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    // Listen for SIGTERM before anything is up: a signal that comes the moment `/health`
    // first says 200 must drain, not kill the process with the default action.
    let signal = Signal::install();
    let running = start(config).await?;
    signal.wait().await;
    running.shutdown().await;
    Ok(())
}

/// A started server: what in-process tests and the shutdown path need.
pub struct Running {
    sip: huddle_sip::service::SipHandle,
    hangup_all: watch::Sender<bool>,
    http_stop: watch::Sender<bool>,
    http: tokio::task::JoinHandle<std::io::Result<()>>,
    grace: Duration,
    health: huddle_api::Health,
    webhooks: huddle_events::Webhooks,
    store: huddle_store::Store,
    /// The SIP sockets actually bound.
    pub sip_addrs: Vec<SocketAddr>,
    /// The HTTP address actually bound.
    pub http_addr: SocketAddr,
    /// The live MPCs, for commands.
    pub rooms: huddle_room::RoomRegistry,
}

pub mod files;
mod journal;
pub mod memory;
mod recovery;
mod status_callbacks;

/// Room events waiting to be turned into callbacks; beyond this they are dropped and counted.
const ROOM_EVENT_QUEUE: usize = 10_000;

/// How long shutdown waits for queued callbacks (the last MPCEnd events) to go out.
const CALLBACK_FLUSH: Duration = Duration::from_secs(5);

/// Starts every part and returns once SIP and HTTP listen.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    let metrics = huddle_api::install_metrics_recorder();
    let health = huddle_api::Health::default();
    memory::start_trimming();
    match files::raise_open_file_limit() {
        Some(limit) => tracing::info!(limit, "open-file limit (RLIMIT_NOFILE)"),
        None => tracing::warn!("cannot read the open-file limit"),
    }
    let advertised_ip = config.resolve_advertised_ip();
    if config.http.uses_default_token() {
        // Off loopback the configuration refuses it; on loopback it is allowed, for trying out.
        tracing::warn!(
            listen = %config.http.listen,
            "http.auth_token is the shipped default {:?}: anyone on this host can use the API and download recordings, and callbacks are signed with a public token; set your own",
            huddle_config::DEFAULT_AUTH_TOKEN
        );
    }

    let routes = router(&config);
    let sip_config = sip_service_config(&config, advertised_ip, &routes);
    tracing::info!(
        trusted = ?config.sip.trusted,
        untrusted = ?config.sip.untrusted,
        "SIP sources outside the trusted networks are refused"
    );
    let tls = sip_tls(&config)?;
    let (sip, sip_events) = huddle_sip::service::start_with(sip_config, tls)
        .await
        .context("cannot open the SIP sockets")?;
    for bound in sip.bound() {
        tracing::info!(transport = bound.transport.via_token(), addr = %bound.addr, "SIP listening");
    }
    health.set_sip(true);

    let opened = ensure_storage(&config)?;
    health.set_storage(true);

    let (low, high) = config.rtp.port_range();
    let ports = Arc::new(PortAllocator::new(low, high));
    let (hangup_tx, hangup_rx) = watch::channel(false);
    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(2))
        .build()
        .context("cannot build the HTTP client")?;
    let signer = huddle_events::Signer::new(&config.http.auth_token);
    let http = huddle_events::HttpClient::new(client.clone(), Some(signer));
    let prompts = huddle_prompts::Prompts::new(
        client,
        huddle_prompts::PromptConfig {
            cache_bytes: config.audio.cache_mb * 1024 * 1024,
            tts_command: config.audio.tts_command.clone(),
            ..huddle_prompts::PromptConfig::default()
        },
    );
    let (room_events, events_rx) = tokio::sync::mpsc::channel(ROOM_EVENT_QUEUE);
    let store = opened.store;
    let webhooks = huddle_events::Webhooks::durable(
        http.clone(),
        callback_delivery(&config.http),
        Arc::new(store.clone()),
        opened.next_callback_id,
    );
    if !opened.pending_callbacks.is_empty() {
        tracing::info!(
            count = opened.pending_callbacks.len(),
            "sending the callbacks the last run did not deliver"
        );
    }
    for pending in opened.pending_callbacks {
        webhooks.resume(
            &pending.key,
            pending.id,
            pending.webhook,
            pending.queued_at,
            pending.rounds,
        );
    }
    // Crash recovery: what the last run left live is ended (and its recordings repaired)
    // through the callback numbering before any room of this run exists.
    let mut numbering = status_callbacks::Numbering::new(
        webhooks.clone(),
        store.clone(),
        opened
            .mpcs
            .sequences
            .iter()
            .map(|(uuid, n)| (huddle_roomport::MpcUuid::from(uuid.as_str()), *n)),
    );
    let priority = match config.server.mixer_priority {
        huddle_config::MixerPriority::Normal => huddle_room::MixerPriority::Normal,
        huddle_config::MixerPriority::High => huddle_room::MixerPriority::High,
        huddle_config::MixerPriority::Realtime => huddle_room::MixerPriority::Realtime,
    };
    let recordings = huddle_room::recording::RecordingPlace {
        dir: std::path::PathBuf::from(&config.storage.recordings),
        url_base: format!(
            "{}/v1/Account/{}/Recording/",
            config.http.public_url.trim_end_matches('/'),
            config.http.auth_id
        ),
    };
    let ended_mpcs =
        recovery::recover(opened.mpcs, &mut numbering, &webhooks, &store, &recordings).await;
    tokio::spawn(status_callbacks::deliver(events_rx, numbering));
    let rooms = huddle_room::RoomRegistry::new(
        http.clone(),
        prompts.clone(),
        room_events,
        priority,
        recordings.clone(),
        Box::new(huddle_roomport::OsIds),
    );
    rooms.set_journal(Arc::new(journal::StoreJournal {
        store: store.clone(),
    }));
    rooms.restore_ended(ended_mpcs);
    tokio::spawn(keep_alive(rooms.clone(), store.clone()));
    let calls = huddle_callflow::Calls::default();
    let ctx = Arc::new(CallContext {
        sip: sip.clone(),
        router: routes,
        ports,
        media: MediaSettings {
            local_ip: advertised_ip,
            jitter_min_ms: config.rtp.jitter_min_ms,
            jitter_max_ms: config.rtp.jitter_max_ms,
            rtp_timeout: (config.rtp.rtp_timeout_secs > 0)
                .then(|| Duration::from_secs(config.rtp.rtp_timeout_secs)),
            codecs: huddle_callflow::media_setup::codec_specs(
                &config.rtp.codecs,
                config.rtp.opus_max_rate,
            ),
        },
        http: http.clone(),
        prompts,
        rooms: Some(Arc::new(rooms.clone())),
        hangup_all: hangup_rx,
        calls,
        ai_streams: huddle_aistream::StreamDeps::new(http.clone(), config.http.auth_id.clone()),
        webhooks: Some(webhooks.clone()),
        recordings: huddle_callflow::manager::RecordingFiles {
            dir: recordings.dir.clone(),
            url_base: recordings.url_base.clone(),
        },
        record_journal: Some(Arc::new(journal::StoreJournal {
            store: store.clone(),
        })),
    });
    tokio::spawn(huddle_callflow::run(ctx.clone(), sip_events));

    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("cannot listen for HTTP on {}", config.http.listen))?;
    let http_addr = listener.local_addr().unwrap_or(config.http.listen);
    tracing::info!(addr = %http_addr, "HTTP listening");
    let (http_stop_tx, http_stop_rx) = watch::channel(false);
    let router = huddle_api::router(huddle_api::ApiState {
        health: health.clone(),
        metrics,
        mpc: Some(huddle_api::mpc::MpcApi {
            rooms: rooms.clone(),
            auth_id: config.http.auth_id.clone(),
            auth_token: config.http.auth_token.clone(),
            calls: ctx.clone(),
            recordings,
        }),
        metrics_auth: config.http.metrics_auth.then(|| {
            huddle_api::auth::Credentials::new(&config.http.auth_id, &config.http.auth_token)
        }),
    });
    let limits = http_limits(&config.http);
    let http = tokio::spawn(async move {
        let mut stop = http_stop_rx;
        huddle_api::serve(listener, router, limits, async move {
            let _ = stop.wait_for(|v| *v).await;
        })
        .await
    });
    health.set_http(true);
    tracing::info!(version = env!("CARGO_PKG_VERSION"), "huddle is up");
    Ok(Running {
        sip_addrs: sip.bound().iter().map(|b| b.addr).collect(),
        sip,
        hangup_all: hangup_tx,
        http_stop: http_stop_tx,
        http,
        grace: Duration::from_secs(config.server.shutdown_grace_secs),
        health,
        webhooks,
        store,
        http_addr,
        rooms,
    })
}

impl Running {
    /// Drains: `/health` answers 503 "draining", OPTIONS and new INVITEs 503; live calls get
    /// the grace period, then the MPCs still live end with 5030 "Server Shutdown" and every
    /// call gets BYE; queued callbacks get a few seconds to go out; HTTP stops.
    pub async fn shutdown(self) {
        let Running {
            sip,
            hangup_all,
            http_stop,
            http,
            grace,
            health,
            webhooks,
            store,
            rooms,
            ..
        } = self;
        // First, before anything that can wait: balancers probing /health or OPTIONS must
        // see the drain at once.
        health.set_draining();
        sip.set_draining(true);
        tracing::info!(
            grace_secs = grace.as_secs(),
            "shutting down: refusing new calls"
        );
        let drained = wait_for_no_legs(&sip, grace).await;
        // MPCs still live (their calls outstayed the grace, or only stream members are left)
        // end with the shutdown's own cause before any of their calls is hung up.
        rooms.shutdown_all().await;
        if !drained {
            tracing::info!("grace period over: hanging up live calls");
            let _ = hangup_all.send(true);
            // BYE transactions finish in well under a second on a healthy network; cap the wait.
            wait_for_no_legs(&sip, Duration::from_secs(5)).await;
        }
        // The last hang-ups' room events take a moment to become callbacks.
        tokio::time::sleep(Duration::from_millis(100)).await;
        if !webhooks.flush(CALLBACK_FLUSH).await {
            tracing::warn!(
                pending = webhooks.pending(),
                "stopping with callbacks not delivered: they go out after the next start"
            );
        }
        let synced = tokio::task::spawn_blocking(move || store.sync(Duration::from_secs(2)));
        if !synced.await.unwrap_or(false) {
            tracing::warn!("the database did not confirm its last writes");
        }
        let _ = http_stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(2), http).await;
        tracing::info!("stopped");
    }
}

/// While MPCs are live, notes every [`ALIVE_EVERY`] that the server is: after a crash the last
/// note bounds when its MPCs ended (for MPCEnd's duration and the history).
async fn keep_alive(rooms: huddle_room::RoomRegistry, store: huddle_store::Store) {
    let mut every = tokio::time::interval(ALIVE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        if !rooms.live_names().is_empty() {
            store.alive(std::time::SystemTime::now());
        }
    }
}

/// How often [`keep_alive`] notes the time.
const ALIVE_EVERY: Duration = Duration::from_secs(2);

async fn wait_for_no_legs(sip: &huddle_sip::service::SipHandle, limit: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if sip.leg_count().await == 0 {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// SIGTERM (and Ctrl-C), listened for from the moment it is installed.
struct Signal {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl Signal {
    fn install() -> Signal {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let term = signal(SignalKind::terminate())
                .map_err(|e| tracing::warn!(error = %e, "cannot listen for SIGTERM"))
                .ok();
            Signal { term }
        }
        #[cfg(not(unix))]
        {
            Signal {}
        }
    }

    async fn wait(self) {
        #[cfg(unix)]
        if let Some(mut term) = self.term {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The TLS settings of the SIP service: `[sip.tls]`'s certificate for the `tls:` listeners,
/// and the system's CAs plus `sip.trunk.tls_ca` for a `;transport=tls` trunk. None when
/// neither is configured. Also run by `huddle check-config`, which so finds a key that does not
/// match its certificate.
pub fn sip_tls(config: &Config) -> anyhow::Result<Option<SipTls>> {
    let trunk = config.sip.trunk.as_ref();
    let trunk_target = trunk.and_then(|t| UriTarget::parse(&t.uri));
    let trunk_tls = trunk_target
        .as_ref()
        .is_some_and(|t| t.transport_kind() == TransportKind::Tls);
    if !config.sip.has_tls_listener() && !trunk_tls {
        return Ok(None);
    }
    let extra = match trunk.and_then(|t| t.tls_ca.as_deref()) {
        Some(path) => huddle_config::load_certificates(path)
            .map_err(|why| anyhow::anyhow!("sip.trunk.tls_ca {path:?}: {why}"))?,
        None => Vec::new(),
    };
    let mut tls =
        SipTls::client(root_store(extra)).context("cannot set up TLS for the SIP trunk")?;
    if let (Some(name), Some(addr)) = (
        trunk.and_then(|t| t.tls_server_name.clone()),
        trunk_target.as_ref().and_then(UriTarget::socket_addr),
    ) {
        let name = ServerName::try_from(name)
            .map_err(|e| anyhow::anyhow!("sip.trunk.tls_server_name: {e}"))?;
        tls = tls.with_server_name(addr, name);
    }
    let Some(table) = &config.sip.tls else {
        return Ok(Some(tls));
    };
    tls = tls.with_handshake_timeout(Duration::from_secs(table.handshake_timeout_secs));
    if let (Some(cert), Some(key)) = (&table.certificate, &table.private_key) {
        let chain = huddle_config::load_certificates(cert)
            .map_err(|why| anyhow::anyhow!("sip.tls.certificate {cert:?}: {why}"))?;
        let key_der = huddle_config::load_private_key(key)
            .map_err(|why| anyhow::anyhow!("sip.tls.private_key {key:?}: {why}"))?;
        tls = tls.with_certificate(chain, key_der).with_context(|| {
            format!("sip.tls: the certificate {cert:?} and the private key {key:?} cannot be used together")
        })?;
    }
    Ok(Some(tls))
}

fn sip_service_config(config: &Config, advertised_ip: IpAddr, routes: &Router) -> SipServiceConfig {
    let listen: Vec<ListenAddr> = config
        .sip
        .listen_addrs()
        .into_iter()
        .map(
            |(transport, addr): (ListenTransport, SocketAddr)| ListenAddr {
                transport: match transport {
                    ListenTransport::Udp => TransportKind::Udp,
                    ListenTransport::Tcp => TransportKind::Tcp,
                    ListenTransport::Tls => TransportKind::Tls,
                },
                addr,
            },
        )
        .collect();
    let port_of = |kind: TransportKind| {
        listen
            .iter()
            .find(|l| l.transport == kind)
            .map(|l| l.addr.port())
            .filter(|p| *p != 0)
    };
    let trunk = config.sip.trunk.as_ref().map(|t| TrunkConfig {
        uri: t.uri.clone(),
        username: t.username.clone(),
        password: t.password.clone(),
        strip_plus: t.strip_plus,
    });
    SipServiceConfig {
        endpoint: EndpointConfig {
            advertised_host: advertised_ip.to_string(),
            udp_port: port_of(TransportKind::Udp),
            tcp_port: port_of(TransportKind::Tcp),
            user_agent: config.sip.user_agent.clone(),
            trunk,
            timers: TimerConfig::default(),
        },
        listen,
        max_message_size: config.sip.max_message_size,
        access: access_policy(config, routes),
        limits: sip_limits(config),
    }
}

/// `server.max_calls` and the `sip` flood limits (INVITEs per source, TCP and TLS connections).
fn sip_limits(config: &Config) -> SipLimits {
    let sip = &config.sip;
    SipLimits {
        calls: CallLimits {
            max_calls: config.server.max_calls,
            invite_rate_per_source: sip.invite_rate_per_source,
            invite_burst_per_source: sip.invite_burst_per_source,
            max_unconfirmed_per_source: sip.max_unconfirmed_per_source,
        },
        connections: ConnectionLimits {
            max_connections: sip.tcp_max_connections,
            max_per_source: sip.tcp_max_connections_per_source,
            message_timeout: Duration::from_secs(sip.tcp_message_timeout_secs),
            idle_timeout: Duration::from_secs(sip.tcp_idle_timeout_secs),
        },
    }
}

/// `sip.trusted` and `sip.untrusted`, the routes' `from_networks` when any route has one, and
/// digest authentication when any route has `auth = true`.
fn access_policy(config: &Config, routes: &Router) -> AccessPolicy {
    let mut policy = AccessPolicy::new(config.sip.trusted_networks(), config.sip.untrusted);
    if routes.restricts_networks() {
        policy = policy.with_routes(Arc::new(routes.clone()));
    }
    if let Some(auth) = inbound_auth(config, routes) {
        policy = policy.with_inbound_auth(auth);
    }
    policy
}

/// `[[sip.user]]`, `sip.auth_realm` and the routes with `auth = true`; None when no route
/// requires authentication.
fn inbound_auth(config: &Config, routes: &Router) -> Option<InboundAuth> {
    let required = AuthRoutes::new(
        routes.clone(),
        config.routes.iter().map(|r| r.auth).collect(),
    );
    if !required.any() {
        return None;
    }
    let realm = &config.sip.auth_realm;
    let users = config
        .sip
        .users
        .iter()
        .map(|u| {
            let credentials = match &u.password {
                Some(password) => Credentials::from_password(&u.username, realm, password),
                None => Credentials::from_ha1(u.ha1.as_deref(), u.ha1_sha256.as_deref()),
            };
            (u.username.clone(), credentials)
        })
        .collect();
    Some(
        InboundAuth::new(realm.clone(), users, Arc::new(required))
            .with_nonce_lifetime(Duration::from_secs(config.sip.auth_nonce_lifetime_secs)),
    )
}

fn router(config: &Config) -> Router {
    let rules = config
        .routes
        .iter()
        .map(|r| RouteRule {
            user: r.user.clone(),
            action: if r.echo {
                RouteAction::Echo
            } else if let Some(xml) = &r.xml {
                RouteAction::Xml(xml.clone())
            } else {
                RouteAction::AnswerUrl {
                    url: r.answer_url.clone().unwrap_or_default(),
                    method: r.answer_method.clone(),
                }
            },
            max_duration: (r.max_duration_secs > 0)
                .then(|| Duration::from_secs(r.max_duration_secs)),
            from_networks: r.source_networks(),
            latching: r.latching,
            srtp: r.srtp,
        })
        .collect();
    Router::new(rules)
}

/// The HTTP listener's connection caps and timeouts, from `[http]`.
fn http_limits(http: &huddle_config::HttpConfig) -> huddle_api::HttpLimits {
    huddle_api::HttpLimits {
        max_connections: http.max_connections,
        max_connections_per_source: http.max_connections_per_source,
        header_read_timeout: Duration::from_secs(http.header_read_timeout_secs),
        idle_timeout: Duration::from_secs(http.idle_timeout_secs),
        request_timeout: Duration::from_secs(http.request_timeout_secs),
    }
}

/// The callback queue's bounds and outage retries, from `[http]`.
fn callback_delivery(http: &huddle_config::HttpConfig) -> huddle_events::DeliveryOptions {
    huddle_events::DeliveryOptions {
        capacity: huddle_config::CALLBACK_QUEUE_CAPACITY,
        per_receiver: http.callback_queue_per_receiver,
        retry: huddle_events::RetrySchedule {
            initial: Duration::from_millis(http.callback_retry_initial_ms),
            max: Duration::from_secs(http.callback_retry_max_secs),
            horizon: Duration::from_secs(http.callback_retry_horizon_secs),
        },
    }
}

fn ensure_storage(config: &Config) -> anyhow::Result<huddle_store::Opened> {
    std::fs::create_dir_all(&config.storage.recordings).with_context(|| {
        format!(
            "cannot create the recordings directory {}",
            config.storage.recordings
        )
    })?;
    huddle_store::Store::open(&config.storage.database).context("cannot open the database")
}
