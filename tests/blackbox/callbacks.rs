//! Status callbacks end to end: a real MPC over SIP and RTP reports to a real HTTP receiver,
//! in order, signed, with the parameters of callbacks.md §3 and only the selected groups.

use std::time::Duration;

use huddle_events::signature::{self, V3, V3_NONCE};
use huddle_testkit::{HttpStub, ServerProcess, StubRequest};
use huddle_xml::HttpMethod;

use super::{answered, server};

/// `<name>-<role>-<mpc>` joins `<mpc>` with that role and the given attributes.
fn route(name: &str, attrs: &str) -> String {
    format!(
        "[[route]]\nuser = \"^{name}-(?P<role>agent|customer)-(?P<mpc>[a-z0-9]+)$\"\n\
         xml = '<Response><MultiPartyCall role=\"$role\" enterSound=\"none\" exitSound=\"none\" {attrs}>$mpc</MultiPartyCall></Response>'\n"
    )
}

fn names(requests: &[StubRequest]) -> Vec<&str> {
    requests
        .iter()
        .map(|r| r.param("EventName").unwrap_or("?"))
        .collect()
}

/// The request as a Plivo SDK's validator sees it, checked against the account's token.
fn assert_signed(r: &StubRequest, url: &str) {
    let nonce = r.header(V3_NONCE).expect("a V3 nonce");
    let expected = signature::v3_signature("change-me", HttpMethod::Post, url, &r.form, nonce);
    assert_eq!(r.header(V3), Some(expected.as_str()), "{r:?}");
}

#[tokio::test]
async fn an_mpcs_life_is_reported_in_order_signed_with_its_parameters() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let stub = HttpStub::start().await;
        stub.serve("/status", 200, "text/plain", "");
        let url = stub.url("/status");
        let attrs = format!(
            "statusCallbackUrl=\"{url}\" statusCallbackEvents=\"mpc-state-changes, participant-state-changes,participant-speak-events\""
        );
        let srv = server(&route("cb", &attrs), 40);
        let (mut agent, mut agent_rtp, agent_media) = answered(srv.sip, "cb-agent-s").await;
        let (mut customer, mut customer_rtp, customer_media) =
            answered(srv.sip, "cb-customer-s").await;
        // Both talk for a second: speak events for each.
        let talk = Duration::from_millis(1000);
        tokio::join!(
            agent_rtp.talk(agent_media, 600.0, talk),
            customer_rtp.talk(customer_media, 900.0, talk)
        );
        customer_rtp
            .talk(customer_media, 0.0, Duration::from_millis(800))
            .await;
        customer.bye().await;
        // stayAlone is false: the agent alone ends the MPC, and the call goes on to hang up.
        let all = stub
            .wait_until("/status", Duration::from_secs(10), |got| {
                names(got).contains(&"MPCEnd")
            })
            .await
            .unwrap_or_else(|| panic!("no MPCEnd: {:?}", names(&stub.requests_to("/status"))));
        let bye = agent
            .recv_until(Duration::from_secs(5), |m| m.start.starts_with("BYE "))
            .await
            .expect("the agent's call is hung up after the MPC");
        agent.reply_ok(&bye).await;

        // Arrival order is emission order: SequenceNumber counts up from 1 without a gap.
        let sequence: Vec<u64> = all
            .iter()
            .map(|r| r.param("SequenceNumber").unwrap().parse().unwrap())
            .collect();
        assert_eq!(sequence, (1..=all.len() as u64).collect::<Vec<_>>());

        let state: Vec<&str> = names(&all)
            .into_iter()
            .filter(|n| !n.starts_with("ParticipantSpeak"))
            .collect();
        assert_eq!(
            state,
            [
                "MPCInitialized",
                "ParticipantJoin",
                "MPCStart",
                "ParticipantJoin",
                "ParticipantExit",
                "ParticipantExit",
                "MPCEnd"
            ]
        );
        let joins: Vec<&StubRequest> = all
            .iter()
            .filter(|r| r.param("EventName") == Some("ParticipantJoin"))
            .collect();
        assert_eq!(joins[0].param("ParticipantRole"), Some("Agent"));
        assert_eq!(joins[1].param("ParticipantRole"), Some("Customer"));
        let customer_id = joins[1].param("MemberID").unwrap();
        let speakers: Vec<&str> = all
            .iter()
            .filter(|r| r.param("EventName") == Some("ParticipantSpeakStart"))
            .filter_map(|r| r.param("MemberID"))
            .collect();
        assert!(speakers.contains(&customer_id), "{speakers:?}");
        assert!(speakers.contains(&joins[0].param("MemberID").unwrap()));

        let mpc_uuid = all[0].param("MPCUUID").unwrap();
        for r in &all {
            assert_eq!(r.method, "POST", "statusCallbackMethod defaults to POST");
            assert_eq!(r.param("MPCUUID"), Some(mpc_uuid));
            assert_eq!(r.param("MPCName"), Some("s"));
            let stamp = r.param("EventTimestamp").unwrap();
            assert_eq!(stamp.len(), 25, "YYYY-MM-DD HH:mm:ss+00:00: {stamp}");
            assert_signed(r, &url);
            if r.param("EventName").unwrap().starts_with("Participant") {
                for key in ["MemberID", "ParticipantCallUUID", "ParticipantCoachMode"] {
                    assert!(r.param(key).is_some_and(|v| !v.is_empty()), "{key}: {r:?}");
                }
            }
        }
        let end = all.last().unwrap();
        assert_eq!(end.param("EventName"), Some("MPCEnd"));
        assert!(end.param("MPCDuration").is_some());
        assert_eq!(end.param("MPCTerminationCauseCode"), Some("1010"));
        // Counted once the receiver's answer is in, which may be a moment after it got the
        // request.
        let delivered = srv
            .metric_until(
                "huddle_callbacks_total{result=\"delivered\"}",
                Duration::from_secs(5),
                |v| v >= all.len() as f64,
            )
            .await;
        assert_eq!(delivered, Some(all.len() as f64));
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn only_the_selected_groups_are_sent_by_the_chosen_method() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let stub = HttpStub::start().await;
        stub.serve("/mpc", 200, "text/plain", "");
        let attrs = format!(
            "statusCallbackUrl=\"{}\" statusCallbackMethod=\"GET\" statusCallbackEvents=\"mpc-state-changes\" stayAlone=\"true\"",
            stub.url("/mpc")
        );
        let srv = server(&route("only", &attrs), 20);
        let (mut agent, mut rtp, media) = answered(srv.sip, "only-agent-g").await;
        rtp.talk(media, 700.0, Duration::from_millis(800)).await;
        agent.bye().await;
        let got = stub
            .wait_until("/mpc", Duration::from_secs(5), |got| {
                names(got).contains(&"MPCEnd")
            })
            .await
            .unwrap_or_else(|| panic!("no MPCEnd: {:?}", names(&stub.requests_to("/mpc"))));
        // Nothing more arrives: once the call and the room are gone (nothing is left to emit
        // an event; MPCEnd is an MPC's last without a recording) and the server counts as many
        // callbacks sent as the receiver got, no unselected event is still on its way.
        for gauge in ["huddle_calls_active", "huddle_rooms_active"] {
            let active = srv
                .metric_until(gauge, Duration::from_secs(5), |v| v == 0.0)
                .await;
            assert_eq!(active, Some(0.0), "{gauge}");
        }
        let sent = srv
            .metric_until("huddle_callbacks_total", Duration::from_secs(5), |v| {
                v >= got.len() as f64
            })
            .await;
        assert_eq!(sent, Some(got.len() as f64), "every callback sent was received");
        assert_eq!(srv.metric("huddle_callbacks_dropped_total"), 0.0);
        let got_after = stub.requests_to("/mpc");
        assert_eq!(got.len(), got_after.len(), "nothing more arrives");
        assert_eq!(names(&got), ["MPCInitialized", "MPCStart", "MPCEnd"]);
        assert!(got.iter().all(|r| r.method == "GET" && r.form.is_empty()));
        assert_eq!(got[2].param("MPCTerminationCauseCode"), Some("1000"));
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn a_down_receiver_costs_the_call_nothing() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let dead = format!("http://{}/status", closed.local_addr().unwrap());
        drop(closed);
        let srv = server(
            &route(
                "down",
                &format!("statusCallbackUrl=\"{dead}\" stayAlone=\"true\""),
            ),
            20,
        );
        let (mut agent, mut rtp, media) = answered(srv.sip, "down-agent-d").await;
        let heard = rtp.talk(media, 0.0, Duration::from_millis(600)).await;
        assert!(!heard.is_empty(), "media flows while callbacks fail");
        let bye = agent.bye().await.expect("BYE answered");
        assert_eq!(bye.status(), 200);
        // The first callback is being retried (the others wait behind it), and nothing is
        // given up on while the receiver may come back.
        let retries = srv
            .metric_until(
                "huddle_callback_retries_total",
                Duration::from_secs(5),
                |v| v >= 1.0,
            )
            .await;
        assert!(
            retries.is_some(),
            "the failed callback waits for another round"
        );
        assert_eq!(
            srv.metric("huddle_callbacks_total{result=\"expired\"}"),
            0.0
        );
    })
    .await
    .expect("timed out");
}

/// Calls `user` on `srv`, stops the server with SIGTERM (the call is hung up after the grace
/// period) and waits for its clean exit.
async fn stop_with_one_call(mut srv: ServerProcess, user: &str) -> ServerProcess {
    let (mut ua, mut rtp, media) = answered(srv.sip, user).await;
    rtp.talk(media, 0.0, Duration::from_millis(300)).await;
    srv.sigterm();
    let bye = ua
        .recv_until(Duration::from_secs(5), |m| m.start.starts_with("BYE "))
        .await
        .expect("BYE after the grace period");
    ua.reply_ok(&bye).await;
    tokio::task::spawn_blocking(move || {
        assert_eq!(
            srv.wait_exit(Duration::from_secs(20)),
            Some(0),
            "clean exit"
        );
        srv
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn the_last_callbacks_go_out_before_the_server_stops() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let stub = HttpStub::start().await;
        // A slow receiver: the MPCEnd of the shutdown's hang-ups is still queued when the last
        // call is gone.
        stub.serve_delayed("/status", 200, "text/plain", "", Duration::from_millis(400));
        let attrs = format!(
            "statusCallbackUrl=\"{}\" stayAlone=\"true\"",
            stub.url("/status")
        );
        stop_with_one_call(server(&route("stop", &attrs), 20), "stop-agent-t").await;
        let got = stub.requests_to("/status");
        assert_eq!(
            names(&got),
            [
                "MPCInitialized",
                "ParticipantJoin",
                "MPCStart",
                "ParticipantExit",
                "MPCEnd"
            ],
            "every callback was delivered before the process exited"
        );
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn answer_url_requests_are_signed_too() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let stub = HttpStub::start().await;
        stub.serve_xml("/answer", "<Response><Hangup/></Response>");
        let url = stub.url("/answer?app=7");
        let srv = server(
            &format!("[[route]]\nuser = \"^signed$\"\nanswer_url = \"{url}\"\nanswer_method = \"POST\"\n"),
            20,
        );
        let mut ua = huddle_testkit::SipUa::udp(srv.sip).await;
        let rtp = huddle_testkit::RtpPeer::bind().await;
        ua.invite("signed", &huddle_testkit::SipUa::sdp(rtp.port(), &[0]))
            .await
            .expect("a final response");
        let got = stub.wait_for("/answer", 1, Duration::from_secs(5)).await;
        assert_eq!(got.len(), 1);
        let r = &got[0];
        assert_eq!(r.param("Event"), Some("StartApp"));
        assert_signed(r, &url);
        let v2_nonce = r.header(signature::V2_NONCE).expect("a V2 nonce");
        let v2 = signature::v2_signature("change-me", &url, v2_nonce);
        assert_eq!(r.header(signature::V2), Some(v2.as_str()));
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn callbacks_not_delivered_before_a_stop_go_out_after_the_restart() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let stub = HttpStub::start().await;
        // The receiver hangs for longer than the server waits at shutdown.
        stub.serve_delayed("/status", 200, "text/plain", "", Duration::from_secs(30));
        let attrs = format!(
            "statusCallbackUrl=\"{}\" stayAlone=\"true\"",
            stub.url("/status")
        );
        let mut srv = stop_with_one_call(server(&route("keep", &attrs), 20), "keep-agent-k").await;
        let before = stub.requests_to("/status").len();
        assert!(before <= 1, "only the first was in flight");

        // The receiver is healthy again, and so is the server, on the same database.
        stub.serve("/status", 200, "text/plain", "");
        let srv = tokio::task::spawn_blocking(move || {
            srv.restart();
            srv
        })
        .await
        .unwrap();
        let got = stub
            .wait_for("/status", before + 5, Duration::from_secs(10))
            .await;
        let resent = &got[before..];
        assert_eq!(
            names(resent),
            [
                "MPCInitialized",
                "ParticipantJoin",
                "MPCStart",
                "ParticipantExit",
                "MPCEnd"
            ],
            "the whole MPC's callbacks, in order, after the restart"
        );
        let sequence: Vec<&str> = resent
            .iter()
            .map(|r| r.param("SequenceNumber").unwrap())
            .collect();
        assert_eq!(sequence, ["1", "2", "3", "4", "5"]);
        let url = stub.url("/status");
        for r in resent {
            assert_signed(r, &url);
        }
        // The restarted process itself sent them (its counters start at zero).
        let delivered = srv
            .metric_until(
                "huddle_callbacks_total{result=\"delivered\"}",
                Duration::from_secs(5),
                |v| v >= 5.0,
            )
            .await;
        assert_eq!(delivered, Some(5.0));
    })
    .await
    .expect("timed out");
}
