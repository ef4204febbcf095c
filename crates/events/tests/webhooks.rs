//! Webhook delivery against a real HTTP receiver: order within an MPC, independence between
//! MPCs, signatures a receiver can check, retries by the URL's options, a bounded queue.
//! (Retries through outages: `outage_retries.rs`.)

use std::time::{Duration, Instant};

use huddle_events::signature::{self, V2, V2_NONCE, V3, V3_NONCE};
use huddle_events::{DeliveryOptions, HttpClient, RetrySchedule, Signer, Webhook, Webhooks};
use huddle_testkit::HttpStub;
use huddle_xml::HttpMethod;

const TOKEN: &str = "change-me";

fn signed() -> HttpClient {
    HttpClient::new(reqwest::Client::new(), Some(Signer::new(TOKEN)))
}

/// A queue of `capacity` that makes one delivery round per callback (the URL's own retries
/// only), as before outage retries existed.
fn one_round(capacity: usize) -> DeliveryOptions {
    DeliveryOptions {
        capacity,
        per_receiver: capacity,
        retry: RetrySchedule::disabled(),
    }
}

fn hook(url: String, method: HttpMethod, n: usize) -> Webhook {
    Webhook {
        url,
        method,
        params: vec![
            ("EventName".into(), "ParticipantJoin".into()),
            ("SequenceNumber".into(), n.to_string()),
        ],
    }
}

fn sequence(requests: &[huddle_testkit::StubRequest]) -> Vec<String> {
    requests
        .iter()
        .map(|r| r.param("SequenceNumber").unwrap_or("?").to_string())
        .collect()
}

#[tokio::test]
async fn one_mpcs_callbacks_arrive_in_order_even_when_the_first_is_slow() {
    let stub = HttpStub::start().await;
    // Every answer takes a while: were they sent in parallel, the order would be up to chance.
    stub.serve_delayed("/status", 200, "text/plain", "", Duration::from_millis(30));
    let webhooks = Webhooks::new(signed(), one_round(100));
    for n in 1..=8 {
        assert!(webhooks.send("mpc-a", hook(stub.url("/status"), HttpMethod::Post, n)));
    }
    assert!(webhooks.flush(Duration::from_secs(5)).await);
    let got = stub.requests_to("/status");
    assert_eq!(sequence(&got), ["1", "2", "3", "4", "5", "6", "7", "8"]);
    assert_eq!(webhooks.pending(), 0);
}

#[tokio::test]
async fn a_slow_receiver_holds_up_only_its_own_mpc() {
    let stub = HttpStub::start().await;
    stub.serve_delayed("/slow", 200, "text/plain", "", Duration::from_millis(1500));
    stub.serve("/fast", 200, "text/plain", "");
    let webhooks = Webhooks::new(signed(), one_round(100));
    webhooks.send("mpc-slow", hook(stub.url("/slow"), HttpMethod::Post, 1));
    let started = Instant::now();
    webhooks.send("mpc-fast", hook(stub.url("/fast"), HttpMethod::Post, 1));
    let fast = stub.wait_for("/fast", 1, Duration::from_secs(1)).await;
    assert_eq!(fast.len(), 1, "the other MPC's callback went out");
    assert!(started.elapsed() < Duration::from_millis(1000));
    assert!(webhooks.flush(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn post_and_get_callbacks_carry_signatures_plivos_validators_accept() {
    let stub = HttpStub::start().await;
    stub.serve("/cb", 200, "text/plain", "");
    let webhooks = Webhooks::new(signed(), one_round(100));
    let post = stub.url("/cb?tenant=7");
    webhooks.send("k", hook(post.clone(), HttpMethod::Post, 1));
    let get = stub.url("/cb");
    webhooks.send("k", hook(get.clone(), HttpMethod::Get, 2));
    assert!(webhooks.flush(Duration::from_secs(5)).await);
    let got = stub.requests_to("/cb");
    assert_eq!(got.len(), 2);

    // POST: form body, the URL's own query kept, signed over both.
    let r = &got[0];
    assert_eq!(r.method, "POST");
    assert!(r
        .content_type
        .starts_with("application/x-www-form-urlencoded"));
    assert_eq!(r.raw_query, "tenant=7");
    let nonce = r.header(V3_NONCE).expect("nonce");
    let expected = signature::v3_signature(TOKEN, HttpMethod::Post, &post, &r.form, nonce);
    assert_eq!(r.header(V3), Some(expected.as_str()));
    assert_eq!(r.header("X-Plivo-Signature-Ma-V3"), Some(expected.as_str()));
    let v2 = signature::v2_signature(TOKEN, &post, r.header(V2_NONCE).expect("v2 nonce"));
    assert_eq!(r.header(V2), Some(v2.as_str()));

    // GET: the parameters in the query; a receiver validates with the URL it was called on.
    let r = &got[1];
    assert_eq!(r.method, "GET");
    assert_eq!(r.param("EventName"), Some("ParticipantJoin"));
    let called = format!("{get}?{}", r.raw_query);
    let nonce = r.header(V3_NONCE).expect("nonce");
    let expected = signature::v3_signature(TOKEN, HttpMethod::Get, &called, &[], nonce);
    assert_eq!(r.header(V3), Some(expected.as_str()));

    // A different token does not validate.
    let forged = signature::v3_signature("other", HttpMethod::Get, &called, &[], nonce);
    assert_ne!(r.header(V3), Some(forged.as_str()));
}

#[tokio::test]
async fn the_fragment_is_never_sent_and_its_retry_options_are_honoured() {
    let stub = HttpStub::start().await;
    stub.serve("/flaky", 503, "text/plain", "");
    let webhooks = Webhooks::new(signed(), one_round(100));
    // Three attempts in all: the first and rc=2 retries, because rp includes 5xx.
    let url = format!("{}#rc=2&rp=5xx", stub.url("/flaky"));
    webhooks.send("k", hook(url, HttpMethod::Post, 1));
    assert!(webhooks.flush(Duration::from_secs(5)).await);
    let got = stub.requests_to("/flaky");
    assert_eq!(got.len(), 3, "first attempt and two retries");
    assert!(got.iter().all(|r| r.raw_query.is_empty()));

    // Plivo's default policy (ct,rt) does not retry a 5xx at once (outage retries, off here,
    // come later).
    stub.serve("/once", 500, "text/plain", "");
    webhooks.send("k", hook(stub.url("/once"), HttpMethod::Post, 2));
    assert!(webhooks.flush(Duration::from_secs(5)).await);
    assert_eq!(stub.requests_to("/once").len(), 1);
}

#[tokio::test]
async fn an_unreachable_receiver_given_up_on_lets_later_callbacks_go() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/gone#ct=200", closed.local_addr().unwrap());
    drop(closed);
    let stub = HttpStub::start().await;
    stub.serve("/cb", 200, "text/plain", "");
    let webhooks = Webhooks::new(signed(), one_round(100));
    webhooks.send("k", hook(dead, HttpMethod::Post, 1));
    webhooks.send("k", hook(stub.url("/cb"), HttpMethod::Post, 2));
    assert!(webhooks.flush(Duration::from_secs(10)).await);
    assert_eq!(sequence(&stub.requests_to("/cb")), ["2"]);
}

#[tokio::test]
async fn a_full_queue_drops_new_callbacks_instead_of_growing() {
    let stub = HttpStub::start().await;
    stub.serve_delayed("/slow", 200, "text/plain", "", Duration::from_millis(300));
    let webhooks = Webhooks::new(signed(), one_round(3));
    let accepted: Vec<bool> = (1..=5)
        .map(|n| webhooks.send("k", hook(stub.url("/slow"), HttpMethod::Post, n)))
        .collect();
    assert_eq!(accepted, [true, true, true, false, false]);
    assert!(webhooks.flush(Duration::from_secs(5)).await);
    assert_eq!(sequence(&stub.requests_to("/slow")), ["1", "2", "3"]);
    // Room again once delivered.
    assert!(webhooks.send("k", hook(stub.url("/slow"), HttpMethod::Post, 6)));
    assert!(webhooks.flush(Duration::from_secs(5)).await);
}

#[tokio::test]
async fn flush_gives_up_after_its_limit() {
    let stub = HttpStub::start().await;
    stub.serve_delayed("/slow", 200, "text/plain", "", Duration::from_secs(3));
    let webhooks = Webhooks::new(signed(), one_round(10));
    webhooks.send("k", hook(stub.url("/slow"), HttpMethod::Post, 1));
    let started = Instant::now();
    assert!(!webhooks.flush(Duration::from_millis(200)).await);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(webhooks.pending(), 1);
}
