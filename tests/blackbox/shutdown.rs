//! SIGTERM: the drain is visible to load balancers at once (`/health` 503 "draining", OPTIONS
//! 503, new INVITEs 503), live calls get `server.shutdown_grace_secs` (2 s in the test
//! configuration) before their BYE, and MPCs ended by the shutdown say so in MPCEnd.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use huddle_testkit::{HttpStub, Msg, SipUa, StubRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{answered, server};

/// The test configuration's `server.shutdown_grace_secs`.
const GRACE: Duration = Duration::from_secs(2);

/// GET `/health` without blocking the test's runtime: (status, body), None when the server
/// does not answer.
async fn health(http: SocketAddr) -> Option<(u16, String)> {
    let mut s = tokio::net::TcpStream::connect(http).await.ok()?;
    s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(2), s.read_to_string(&mut out))
        .await
        .ok()?
        .ok()?;
    let status = out.get(9..12)?.parse().ok()?;
    Some((status, out))
}

/// An out-of-dialog OPTIONS from `ua`; its answer.
async fn options(ua: &mut SipUa, server: SocketAddr) -> Option<Msg> {
    let local = ua.local;
    let branch = uuid::Uuid::new_v4().simple();
    let text = format!(
        "OPTIONS sip:huddle@{server} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{branch}\r\n\
Max-Forwards: 70\r\nFrom: <sip:probe@{local}>;tag=p1\r\nTo: <sip:huddle@{server}>\r\n\
Call-ID: {branch}@probe\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    ua.send_raw(text.as_bytes()).await;
    ua.recv_until(Duration::from_secs(2), |m| m.cseq_method() == "OPTIONS")
        .await
}

#[tokio::test]
async fn sigterm_refuses_new_calls_and_ends_live_ones_after_grace() {
    tokio::time::timeout(Duration::from_secs(40), async {
        let mut srv = server("", 100);
        let (mut ua, mut rtp, media) = answered(srv.sip, "echo").await;
        rtp.talk(media, 1000.0, Duration::from_millis(300)).await;
        srv.sigterm();
        // The server takes the signal asynchronously: until it does, a new call may still be
        // answered (and is hung up again); within a deadline new calls get 503.
        let deadline = Instant::now() + Duration::from_secs(2);
        let refused = loop {
            let mut late = SipUa::udp(srv.sip).await;
            let answer = late
                .invite("echo", &SipUa::sdp(4010, &[0]))
                .await
                .expect("an answer");
            if answer.status() != 200 || Instant::now() >= deadline {
                break answer;
            }
            late.ack().await;
            late.bye().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(refused.status(), 503, "{}", refused.start);
        let bye = ua
            .recv_until(Duration::from_secs(5), |m| m.start.starts_with("BYE "))
            .await
            .expect("BYE within the grace period (2 s)");
        ua.reply_ok(&bye).await;
        let code = tokio::task::spawn_blocking(move || srv.wait_exit(Duration::from_secs(10)))
            .await
            .unwrap();
        assert_eq!(code, Some(0), "clean exit");
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn from_sigterm_health_says_draining_within_100_ms_and_options_gets_503() {
    tokio::time::timeout(Duration::from_secs(40), async {
        let mut srv = server("", 100);
        let mut probe = SipUa::udp(srv.sip).await;
        let before = options(&mut probe, srv.sip).await.expect("an answer");
        assert_eq!(before.status(), 200, "{}", before.start);
        let (status, body) = health(srv.http).await.expect("/health answers");
        assert_eq!(status, 200, "{body}");
        // A live call keeps the drain going for the grace period.
        let (mut ua, mut rtp, media) = answered(srv.sip, "echo").await;
        rtp.talk(media, 1000.0, Duration::from_millis(200)).await;

        let signalled = Instant::now();
        srv.sigterm();
        let (took, body) = loop {
            if let Some((503, body)) = health(srv.http).await {
                break (signalled.elapsed(), body);
            }
            assert!(
                signalled.elapsed() < Duration::from_secs(1),
                "/health still not 503 a second after SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        };
        assert!(
            took < Duration::from_millis(100),
            "/health said 503 only {took:?} after SIGTERM"
        );
        assert!(body.contains("\"status\":\"draining\""), "{body}");

        let during = options(&mut probe, srv.sip).await.expect("an answer");
        assert_eq!(during.status(), 503, "{}", during.start);
        assert!(during.header("Retry-After").is_some(), "{during:?}");
        // Still draining (not gone) a moment before the grace period ends.
        tokio::time::sleep(GRACE - Duration::from_millis(700)).await;
        let (status, body) = health(srv.http)
            .await
            .expect("/health answers during the drain");
        assert_eq!(status, 503, "{body}");

        let bye = ua
            .recv_until(Duration::from_secs(5), |m| m.start.starts_with("BYE "))
            .await
            .expect("BYE after the grace period");
        ua.reply_ok(&bye).await;
        let code = tokio::task::spawn_blocking(move || srv.wait_exit(Duration::from_secs(10)))
            .await
            .unwrap();
        assert_eq!(code, Some(0), "clean exit");
    })
    .await
    .expect("timed out");
}

fn event<'a>(requests: &'a [StubRequest], name: &str) -> Vec<&'a StubRequest> {
    requests
        .iter()
        .filter(|r| r.param("EventName") == Some(name))
        .collect()
}

#[tokio::test]
async fn an_mpc_ended_by_the_shutdown_reports_server_shutdown() {
    tokio::time::timeout(Duration::from_secs(40), async {
        let stub = HttpStub::start().await;
        stub.serve("/status", 200, "text/plain", "");
        let route = format!(
            "[[route]]\nuser = \"^(?P<role>agent|customer)-(?P<mpc>[a-z0-9]+)$\"\n\
             xml = '<Response><MultiPartyCall role=\"$role\" enterSound=\"none\" exitSound=\"none\" \
             statusCallbackUrl=\"{}\" statusCallbackEvents=\"mpc-state-changes,participant-state-changes\">$mpc</MultiPartyCall></Response>'\n",
            stub.url("/status")
        );
        let mut srv = server(&route, 40);
        let (mut agent, _agent_rtp, _) = answered(srv.sip, "agent-drain").await;
        let (mut customer, _customer_rtp, _) = answered(srv.sip, "customer-drain").await;
        stub.wait_until("/status", Duration::from_secs(10), |got| {
            event(got, "ParticipantJoin").len() == 2
        })
        .await
        .expect("both join");

        let signalled = Instant::now();
        srv.sigterm();
        // Neither caller hangs up: the server does, once the grace period is over.
        let (agent_bye, customer_bye) = tokio::join!(
            agent.recv_until(Duration::from_secs(8), |m| m.start.starts_with("BYE ")),
            customer.recv_until(Duration::from_secs(8), |m| m.start.starts_with("BYE ")),
        );
        let took = signalled.elapsed();
        let (agent_bye, customer_bye) = (
            agent_bye.expect("the agent gets BYE"),
            customer_bye.expect("the customer gets BYE"),
        );
        assert!(
            took >= GRACE - Duration::from_millis(100),
            "BYE {took:?} after SIGTERM, before the grace period ended"
        );
        agent.reply_ok(&agent_bye).await;
        customer.reply_ok(&customer_bye).await;

        let got = stub
            .wait_until("/status", Duration::from_secs(10), |got| {
                !event(got, "MPCEnd").is_empty()
            })
            .await
            .expect("MPCEnd arrives");
        let end = event(&got, "MPCEnd");
        assert_eq!(end.len(), 1, "{got:?}");
        assert_eq!(
            end[0].param("MPCTerminationCause"),
            Some("Server Shutdown"),
            "{:?}",
            end[0]
        );
        assert_eq!(end[0].param("MPCTerminationCauseCode"), Some("5030"));
        let exits = event(&got, "ParticipantExit");
        assert_eq!(exits.len(), 2, "{got:?}");
        for exit in exits {
            assert_eq!(
                exit.param("ParticipantExitCause"),
                Some("Multiparty Call Ended"),
                "{exit:?}"
            );
        }
        let code = tokio::task::spawn_blocking(move || srv.wait_exit(Duration::from_secs(10)))
            .await
            .unwrap();
        assert_eq!(code, Some(0), "clean exit");
    })
    .await
    .expect("timed out");
}
