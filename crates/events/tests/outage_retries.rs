//! Callbacks through a receiver's outage, against a real HTTP receiver: transient failures are
//! tried again with growing waits until delivered or past the horizon, other 4xx are final,
//! Retry-After is honoured, a waiting callback holds back only its own key, and one receiver
//! cannot take the whole queue.

use std::time::{Duration, Instant};

use huddle_events::{
    DeliveryOptions, HttpClient, RetrySchedule, Signer, Webhook, Webhooks, ATTEMPT_HEADER,
};
use huddle_testkit::{HttpStub, StubRequest};
use huddle_xml::HttpMethod;

fn client() -> HttpClient {
    HttpClient::new(reqwest::Client::new(), Some(Signer::new("change-me")))
}

fn options(initial_ms: u64, max_ms: u64, horizon: Duration) -> DeliveryOptions {
    DeliveryOptions {
        capacity: 100,
        per_receiver: 100,
        retry: RetrySchedule {
            initial: Duration::from_millis(initial_ms),
            max: Duration::from_millis(max_ms),
            horizon,
        },
    }
}

fn hook(url: String, n: usize) -> Webhook {
    Webhook {
        url,
        method: HttpMethod::Post,
        params: vec![("SequenceNumber".into(), n.to_string())],
    }
}

fn seq(r: &StubRequest) -> &str {
    r.param("SequenceNumber").unwrap_or("?")
}

fn round(r: &StubRequest) -> u32 {
    r.header(ATTEMPT_HEADER)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {ATTEMPT_HEADER}: {r:?}"))
}

/// Timing slack for a loaded machine (scheduling, the request itself).
const SLACK: Duration = Duration::from_millis(250);

#[tokio::test]
async fn a_5xx_outage_is_retried_with_growing_waits_and_order_is_kept() {
    let stub = HttpStub::start().await;
    stub.serve("/cb", 500, "text/plain", "");
    let schedule = options(40, 640, Duration::from_secs(60));
    let webhooks = Webhooks::new(client(), schedule);
    for n in 1..=3 {
        assert!(webhooks.send("mpc", hook(stub.url("/cb"), n)));
    }
    // Eight failed rounds (ceilings 40, 80, ..., 640, 640 ms), then the receiver is back.
    let failed = stub
        .wait_until("/cb", Duration::from_secs(20), |got| got.len() >= 8)
        .await
        .expect("eight rounds");
    stub.serve("/cb", 200, "text/plain", "");
    // (flush would not wait: it stops once only backoffs are left.)
    let got = stub
        .wait_until("/cb", Duration::from_secs(10), |got| {
            got.iter().filter(|r| r.status == 200).count() == 3
        })
        .await
        .expect("all three delivered");
    assert!(webhooks.flush(Duration::from_secs(5)).await);

    // While the first failed, the others waited behind it: every 500 went to number 1.
    let errors: Vec<&StubRequest> = got.iter().filter(|r| r.status == 500).collect();
    assert!(errors.iter().all(|r| seq(r) == "1"), "{got:?}");
    // Then each went out once, in order.
    let delivered: Vec<&str> = got.iter().filter(|r| r.status == 200).map(seq).collect();
    assert_eq!(delivered, ["1", "2", "3"]);
    // Rounds are numbered 1, 2, ... with no gap, and the waits stay under their ceilings.
    let rounds: Vec<u32> = got.iter().filter(|r| seq(r) == "1").map(round).collect();
    assert_eq!(rounds, (1..=rounds.len() as u32).collect::<Vec<_>>());
    let firsts: Vec<&StubRequest> = got.iter().filter(|r| seq(r) == "1").collect();
    for pair in firsts.windows(2) {
        let gap = pair[1].received - pair[0].received;
        let ceiling = schedule.retry.ceiling(round(pair[0]));
        assert!(
            gap <= ceiling + SLACK,
            "round {}: {gap:?} > {ceiling:?}",
            round(pair[0])
        );
    }
    assert!(failed.iter().all(|r| r.status == 500));
    let later = got.iter().filter(|r| seq(r) != "1").map(round);
    assert!(
        later.into_iter().all(|r| r == 1),
        "the others needed one round"
    );
}

#[tokio::test]
async fn other_4xx_answers_are_final_and_the_next_callback_goes() {
    let stub = HttpStub::start().await;
    stub.serve("/gone", 404, "text/plain", "");
    stub.serve("/cb", 200, "text/plain", "");
    let webhooks = Webhooks::new(client(), options(10, 100, Duration::from_secs(60)));
    webhooks.send("mpc", hook(stub.url("/gone"), 1));
    webhooks.send("mpc", hook(stub.url("/cb"), 2));
    assert!(webhooks.flush(Duration::from_secs(5)).await);
    assert_eq!(stub.requests_to("/gone").len(), 1, "never tried again");
    assert_eq!(stub.requests_to("/cb").len(), 1);
    // An unusable URL is final too.
    webhooks.send("mpc", hook("ftp://127.0.0.1:9/x".into(), 3));
    assert!(webhooks.flush(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let stub = HttpStub::start().await;
    stub.serve_headers("/busy", 429, &[("retry-after", "1")]);
    // Without Retry-After the next round would come within 20 ms.
    let webhooks = Webhooks::new(client(), options(20, 5_000, Duration::from_secs(60)));
    webhooks.send("mpc", hook(stub.url("/busy"), 1));
    let got = stub.wait_for("/busy", 1, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 1);
    stub.serve("/busy", 200, "text/plain", "");
    let got = stub.wait_for("/busy", 2, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].status, 200);
    let gap = got[1].received - got[0].received;
    assert!(
        gap >= Duration::from_millis(990) && gap <= Duration::from_secs(1) + SLACK,
        "{gap:?}"
    );
}

#[tokio::test]
async fn past_its_horizon_a_callback_is_given_up_and_the_next_goes() {
    let stub = HttpStub::start().await;
    stub.serve("/down", 503, "text/plain", "");
    stub.serve("/cb", 200, "text/plain", "");
    let horizon = Duration::from_secs(1);
    let webhooks = Webhooks::new(client(), options(20, 200, horizon));
    let started = Instant::now();
    webhooks.send("mpc", hook(stub.url("/down"), 1));
    webhooks.send("mpc", hook(stub.url("/cb"), 2));
    let next = stub.wait_for("/cb", 1, Duration::from_secs(5)).await;
    assert_eq!(next.len(), 1);
    let waited = next[0].received - started;
    assert!(
        waited >= horizon && waited <= horizon + SLACK,
        "given up at its horizon: {waited:?}"
    );
    let tries = stub.requests_to("/down");
    assert!(tries.len() >= 4, "{} rounds", tries.len());
    assert!(tries
        .iter()
        .all(|r| r.received - started <= horizon + SLACK));
    assert!(webhooks.flush(Duration::from_secs(2)).await);
}

#[tokio::test]
async fn a_waiting_callback_holds_back_only_its_own_key() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/gone#ct=200", closed.local_addr().unwrap());
    drop(closed);
    let stub = HttpStub::start().await;
    stub.serve("/down", 500, "text/plain", "");
    stub.serve("/cb", 200, "text/plain", "");
    let webhooks = Webhooks::new(client(), options(200, 1_000, Duration::from_secs(60)));
    // Two keys whose receivers are down (refusing, answering 500), each with a second
    // callback behind.
    webhooks.send("refused", hook(dead, 1));
    webhooks.send("refused", hook(stub.url("/cb?behind=refused"), 2));
    webhooks.send("erring", hook(stub.url("/down"), 1));
    webhooks.send("erring", hook(stub.url("/cb?behind=erring"), 2));
    stub.wait_for("/down", 3, Duration::from_secs(10)).await;
    // A third key goes through at once, while the others are still backing off.
    let started = Instant::now();
    webhooks.send("healthy", hook(stub.url("/cb?healthy"), 1));
    let got = stub
        .wait_until("/cb", Duration::from_secs(2), |got| {
            got.iter().any(|r| r.raw_query == "healthy")
        })
        .await
        .expect("the healthy key's callback");
    assert!(started.elapsed() < Duration::from_millis(500));
    assert!(
        got.iter().all(|r| r.raw_query == "healthy"),
        "nothing of the waiting keys overtook their head: {got:?}"
    );
    assert_eq!(webhooks.pending(), 4);
}

#[tokio::test]
async fn one_down_receiver_cannot_take_the_whole_queue() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/gone#ct=200", closed.local_addr().unwrap());
    drop(closed);
    let stub = HttpStub::start().await;
    stub.serve("/cb", 200, "text/plain", "");
    let webhooks = Webhooks::new(
        client(),
        DeliveryOptions {
            capacity: 10,
            per_receiver: 3,
            retry: RetrySchedule {
                initial: Duration::from_secs(5),
                max: Duration::from_secs(5),
                horizon: Duration::from_secs(60),
            },
        },
    );
    let accepted: Vec<bool> = (1..=5)
        .map(|n| webhooks.send(&format!("mpc-{n}"), hook(dead.clone(), n)))
        .collect();
    assert_eq!(accepted, [true, true, true, false, false]);
    // Another receiver still has room, and is served.
    for n in 1..=3 {
        assert!(webhooks.send("other", hook(stub.url("/cb"), n)));
    }
    let got = stub.wait_for("/cb", 3, Duration::from_secs(5)).await;
    assert_eq!(got.len(), 3);
}

#[tokio::test]
async fn flush_stops_waiting_once_only_backoffs_are_left() {
    let stub = HttpStub::start().await;
    stub.serve_headers("/busy", 503, &[("retry-after", "30")]);
    let webhooks = Webhooks::new(client(), options(10, 60_000, Duration::from_secs(600)));
    webhooks.send("mpc", hook(stub.url("/busy"), 1));
    webhooks.send("mpc", hook(stub.url("/busy"), 2));
    stub.wait_for("/busy", 1, Duration::from_secs(5)).await;
    let started = Instant::now();
    assert!(!webhooks.flush(Duration::from_secs(10)).await);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "nothing could go out before the backoff ends: {:?}",
        started.elapsed()
    );
    assert_eq!(webhooks.pending(), 2);
}
