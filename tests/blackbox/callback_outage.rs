//! Callbacks through an application's outage, end to end: real MPCs over SIP and RTP report to
//! a receiver that refuses connections, then answers 500, then recovers; every callback
//! arrives, in order per MPC, with retry waits that grow within the configured bounds. A dead
//! receiver delays no other MPC's callbacks, and a restart goes on with the retry horizon
//! instead of starting it over.
//!
//! Delivery is at least once: a callback whose answer the server never saw (a timeout, a
//! connection lost after the request was sent, a crash) is sent again. Here every request is
//! answered at once, so a callback answered 200 must never come twice.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use huddle_events::ATTEMPT_HEADER;
use huddle_testkit::{poll_until, HttpStub, ServerProcess, StubRequest};

use super::answered;

/// A server whose `[http]` gets `http_extra` and whose routes `<prefix>-agent-<mpc>` join
/// `<mpc>` alone (stayAlone), reporting to `url`.
fn server_reporting_to(http_extra: &str, routes: &[(&str, &str)]) -> ServerProcess {
    let mut toml = String::new();
    for (prefix, url) in routes {
        toml.push_str(&format!(
            "[[route]]\nuser = \"^{prefix}-(?P<role>agent)-(?P<mpc>[a-z0-9]+)$\"\n\
             xml = '<Response><MultiPartyCall role=\"$role\" enterSound=\"none\" exitSound=\"none\" stayAlone=\"true\" statusCallbackUrl=\"{url}\">$mpc</MultiPartyCall></Response>'\n"
        ));
    }
    ServerProcess::start_with(Path::new(env!("CARGO_BIN_EXE_huddle")), 20, |slots| {
        slots.standard("", http_extra, &toml)
    })
}

/// One MPC's life as a lone agent: joins, talks briefly, hangs up. Five callbacks:
/// MPCInitialized, ParticipantJoin, MPCStart, ParticipantExit, MPCEnd.
async fn lone_agent(sip: SocketAddr, user: &str) {
    let (mut ua, mut rtp, media) = answered(sip, user).await;
    rtp.talk(media, 500.0, Duration::from_millis(300)).await;
    let bye = ua.bye().await.expect("BYE answered");
    assert_eq!(bye.status(), 200);
}

const LIFE: [&str; 5] = [
    "MPCInitialized",
    "ParticipantJoin",
    "MPCStart",
    "ParticipantExit",
    "MPCEnd",
];

/// An address on 127.0.0.1 where nothing listens now, below the ephemeral range (so no
/// socket bound to port 0 elsewhere in the tests takes it) and below the tests' RTP ranges.
fn vacant_port() -> SocketAddr {
    loop {
        let draw = u16::from_be_bytes([
            uuid::Uuid::new_v4().as_bytes()[0],
            uuid::Uuid::new_v4().as_bytes()[1],
        ]);
        let addr = SocketAddr::from(([127, 0, 0, 1], 10_000 + draw % 10_000));
        if std::net::TcpListener::bind(addr).is_ok() {
            return addr;
        }
    }
}

fn seq(r: &StubRequest) -> u64 {
    r.param("SequenceNumber")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no SequenceNumber: {r:?}"))
}

fn round(r: &StubRequest) -> u32 {
    r.header(ATTEMPT_HEADER)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {ATTEMPT_HEADER}: {r:?}"))
}

/// Requests per MPC (by MPCUUID), in arrival order.
fn by_mpc(requests: &[StubRequest]) -> BTreeMap<String, Vec<StubRequest>> {
    let mut mpcs: BTreeMap<String, Vec<StubRequest>> = BTreeMap::new();
    for r in requests {
        let uuid = r.param("MPCUUID").expect("MPCUUID").to_string();
        mpcs.entry(uuid).or_default().push(r.clone());
    }
    mpcs
}

/// Whether every MPC of `requests` (`mpcs` of them) got its whole life answered 200.
fn all_delivered(requests: &[StubRequest], mpcs: usize) -> bool {
    let grouped = by_mpc(requests);
    grouped.len() == mpcs
        && grouped
            .values()
            .all(|rs| rs.iter().filter(|r| r.status == 200).count() >= LIFE.len())
}

/// The retry ceilings the outage test configures: 250 ms doubling up to 8 s.
const INITIAL: Duration = Duration::from_millis(250);
const CAP: Duration = Duration::from_secs(8);
fn ceiling(round: u32) -> Duration {
    let doubled = INITIAL.saturating_mul(1u32 << round.saturating_sub(1).min(16));
    doubled.min(CAP)
}
/// Timing slack for a loaded machine (scheduling, the request itself).
const SLACK: Duration = Duration::from_secs(1);

#[tokio::test]
async fn callbacks_survive_a_refusing_then_failing_receiver_in_order_per_mpc() {
    tokio::time::timeout(Duration::from_secs(150), async {
        let receiver = vacant_port();
        let url = format!("http://{receiver}/status");
        let srv = server_reporting_to(
            "callback_retry_initial_ms = 250\ncallback_retry_max_secs = 8\ncallback_retry_horizon_secs = 600\n",
            &[("out", &url)],
        );
        // The application is down: nothing listens at its address.
        let outage = Instant::now();
        tokio::join!(
            lone_agent(srv.sip, "out-agent-first"),
            lone_agent(srv.sip, "out-agent-second")
        );
        // Both MPCs' first callbacks fail and wait for their next rounds.
        let retries = srv
            .metric_until("huddle_callback_retries_total", Duration::from_secs(20), |v| {
                v >= 6.0
            })
            .await;
        assert!(retries.is_some(), "rounds were retried while refused");
        // Then it answers 500 ...
        let stub = HttpStub::start_on(receiver).await;
        stub.serve("/status", 500, "text/plain", "");
        // ... until the outage has lasted a minute: the scenario's clock, not a wait for the
        // server.
        tokio::time::sleep_until((outage + Duration::from_secs(60)).into()).await;
        let back = Instant::now();
        stub.serve("/status", 200, "text/plain", "");
        let got = stub
            .wait_until("/status", CAP + Duration::from_secs(20), |got| {
                all_delivered(got, 2)
            })
            .await
            .unwrap_or_else(|| panic!("not all delivered: {:?}", stub.requests_to("/status")));

        let mpcs = by_mpc(&got);
        assert_eq!(mpcs.len(), 2);
        for (uuid, requests) in &mpcs {
            // Answered 200: the whole life, in order, each once (every answer reached the
            // server, so at-least-once delivery had nothing to repeat).
            let ok: Vec<&StubRequest> = requests.iter().filter(|r| r.status == 200).collect();
            let names: Vec<&str> = ok.iter().map(|r| r.param("EventName").unwrap()).collect();
            assert_eq!(names, LIFE, "{uuid}");
            let numbers: Vec<u64> = ok.iter().map(|r| seq(r)).collect();
            assert_eq!(numbers, [1, 2, 3, 4, 5], "{uuid}");
            // The first callback held the others back through the outage.
            let failed: Vec<&StubRequest> =
                requests.iter().filter(|r| r.status == 500).collect();
            assert!(failed.iter().all(|r| seq(r) == 1), "{uuid}: {failed:?}");
            assert!(ok[0].received >= back, "{uuid}: nothing succeeded before the recovery");
            assert!(
                ok[0].received - back <= CAP + SLACK,
                "{uuid}: delivered within one capped wait of the recovery"
            );

            // The first callback's rounds as the receiver saw them: numbered without a gap
            // from the first it could see (the earlier ones were refused) to the one that
            // succeeded, with waits under the doubling ceilings.
            let firsts: Vec<&StubRequest> = requests.iter().filter(|r| seq(r) == 1).collect();
            let rounds: Vec<u32> = firsts.iter().map(|r| round(r)).collect();
            let seen_from = rounds[0];
            assert!(seen_from >= 2, "{uuid}: rounds made while refused: {rounds:?}");
            assert_eq!(
                rounds,
                (seen_from..seen_from + rounds.len() as u32).collect::<Vec<_>>(),
                "{uuid}"
            );
            let mut longest = Duration::ZERO;
            for pair in firsts.windows(2) {
                let gap = pair[1].received - pair[0].received;
                let bound = ceiling(round(pair[0])) + SLACK;
                assert!(gap <= bound, "{uuid}: round {}: {gap:?} > {bound:?}", round(pair[0]));
                longest = longest.max(gap);
            }
            // The waits grew past what the first rounds may wait.
            assert!(longest > ceiling(2) + SLACK, "{uuid}: longest wait {longest:?}");
            // A minute of outage is a few dozen rounds, not hundreds: capped waits of up to
            // 8 s average 4 s. And the rounds went on all through it.
            let last = *rounds.last().unwrap();
            assert!((10..=45).contains(&last), "{uuid}: {last} rounds");
        }
        let delivered = srv
            .metric_until(
                "huddle_callbacks_total{result=\"delivered\"}",
                Duration::from_secs(5),
                |v| v >= 10.0,
            )
            .await;
        assert_eq!(delivered, Some(10.0));
        for result in ["expired", "rejected", "dropped"] {
            let key = format!("huddle_callbacks_total{{result=\"{result}\"}}");
            assert_eq!(srv.metric(&key), 0.0, "{result}");
        }
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn a_dead_receiver_does_not_delay_another_mpcs_callbacks() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let dead = format!("http://{}/status", vacant_port());
        let stub = HttpStub::start().await;
        // One application refuses connections, one accepts and never answers in time.
        stub.serve_delayed("/hang", 200, "text/plain", "", Duration::from_secs(120));
        stub.serve("/ok", 200, "text/plain", "");
        let srv = server_reporting_to(
            "callback_retry_initial_ms = 200\ncallback_retry_max_secs = 2\n",
            &[
                ("dead", &dead),
                ("hang", &stub.url("/hang")),
                ("ok", &stub.url("/ok")),
            ],
        );
        tokio::join!(
            lone_agent(srv.sip, "dead-agent-a"),
            lone_agent(srv.sip, "dead-agent-b"),
            lone_agent(srv.sip, "hang-agent-c")
        );
        let retrying = srv
            .metric_until(
                "huddle_callback_retries_total",
                Duration::from_secs(10),
                |v| v >= 4.0,
            )
            .await;
        assert!(retrying.is_some(), "the dead receiver's MPCs are retrying");
        assert_eq!(
            stub.wait_for("/hang", 1, Duration::from_secs(5))
                .await
                .len(),
            1
        );

        let (mut ua, mut rtp, media) = answered(srv.sip, "ok-agent-d").await;
        rtp.talk(media, 500.0, Duration::from_millis(300)).await;
        let hung_up = Instant::now();
        ua.bye().await.expect("BYE answered");
        let got = stub
            .wait_until("/ok", Duration::from_secs(10), |got| {
                got.len() >= LIFE.len()
            })
            .await
            .unwrap_or_else(|| panic!("only {:?}", stub.requests_to("/ok")));
        let names: Vec<&str> = got.iter().map(|r| r.param("EventName").unwrap()).collect();
        assert_eq!(names, LIFE);
        let end = got.last().unwrap().received;
        assert!(
            end.saturating_duration_since(hung_up) < Duration::from_secs(2),
            "MPCEnd {:?} after the hang-up",
            end.saturating_duration_since(hung_up)
        );
        // The others are still waiting: only the healthy MPC's five were delivered.
        let delivered = srv
            .metric_until(
                "huddle_callbacks_total{result=\"delivered\"}",
                Duration::from_secs(5),
                |v| v >= 5.0,
            )
            .await;
        assert_eq!(delivered, Some(5.0));
        assert_eq!(
            stub.requests_to("/hang").len(),
            1,
            "the hanging one is still in flight"
        );
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn a_restart_goes_on_with_the_retry_horizon_instead_of_starting_it_over() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let stub = HttpStub::start().await;
        stub.serve("/status", 500, "text/plain", "");
        let url = stub.url("/status");
        let horizon = Duration::from_secs(12);
        let mut srv = server_reporting_to(
            "callback_retry_initial_ms = 200\ncallback_retry_max_secs = 1\ncallback_retry_horizon_secs = 12\n",
            &[("again", &url)],
        );
        lone_agent(srv.sip, "again-agent-r").await;
        // Let the first callback retry for five seconds of its twelve.
        let before = poll_until(Duration::from_secs(20), || async {
            let got = stub.requests_to("/status");
            let first = got.first()?.received;
            (got.len() >= 3 && first.elapsed() >= Duration::from_secs(5)).then_some(got)
        })
        .await
        .expect("the first callback is retried");
        let queued = before[0].received;
        let mpc_uuid = before[0].param("MPCUUID").unwrap().to_string();

        // A stop while it waits: the server does not linger for a callback that cannot go
        // out before its next round, and keeps it for the next start.
        srv.sigterm();
        let stopping = Instant::now();
        let mut srv = tokio::task::spawn_blocking(move || {
            assert_eq!(srv.wait_exit(Duration::from_secs(20)), Some(0), "clean exit");
            srv
        })
        .await
        .unwrap();
        assert!(stopping.elapsed() < Duration::from_secs(4), "{:?}", stopping.elapsed());
        let stopped = Instant::now();
        let last_round = stub.requests_to("/status").iter().map(round).max().unwrap();
        let srv = tokio::task::spawn_blocking(move || {
            srv.restart();
            srv
        })
        .await
        .unwrap();
        let restarted = Instant::now();

        // The same horizon: given up about twelve seconds after it was first queued, not
        // twelve seconds after the restart.
        let expired = srv
            .metric_until(
                "huddle_callbacks_total{result=\"expired\"}",
                Duration::from_secs(30),
                |v| v >= 5.0,
            )
            .await;
        assert_eq!(expired, Some(5.0), "all five given up");
        let given_up = Instant::now();
        assert!(
            given_up - queued < horizon + Duration::from_millis(2500),
            "given up {:?} after queueing (restart at {:?})",
            given_up - queued,
            restarted - queued
        );
        assert!(restarted - queued >= Duration::from_secs(5));
        let all = stub.requests_to("/status");
        let after: Vec<&StubRequest> = all.iter().filter(|r| r.received >= stopped).collect();
        // Rounds go on from where they were (a round in flight at the stop, not yet written
        // down, would be numbered again).
        let resumed = after.iter().find(|r| seq(r) == 1).expect("retried after the restart");
        assert!(
            (last_round..=last_round + 1).contains(&round(resumed)),
            "round {} after {last_round}",
            round(resumed)
        );
        // The others were queued within the second after it, and waited behind it: their own
        // rounds came only once it was given up, and ended with their horizons, shortly after.
        let first_given_up = all.iter().rfind(|r| seq(r) == 1).unwrap().received;
        for n in 2..=5 {
            let theirs: Vec<&StubRequest> = all.iter().filter(|r| seq(r) == n).collect();
            assert!(!theirs.is_empty(), "callback {n} was tried");
            assert_eq!(round(theirs[0]), 1, "callback {n}");
            assert!(theirs[0].received >= first_given_up, "callback {n} waited");
            let last = theirs.last().unwrap().received;
            assert!(last - queued < horizon + Duration::from_millis(2500), "callback {n}");
        }
        // Logged with the MPC and the URL.
        let log = srv.log();
        let line = log
            .lines()
            .find(|l| l.contains("within its retry horizon") && l.contains(&mpc_uuid))
            .unwrap_or_else(|| panic!("no give-up line for {mpc_uuid}:\n{log}"));
        assert!(line.contains(&url), "{line}");
    })
    .await
    .expect("timed out");
}
