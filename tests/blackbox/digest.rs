//! Inbound digest authentication over real sockets (RFC 3261 §22, RFC 7616, RFC 8760): routes
//! with `auth = true` challenge callers with 401 (SHA-256 and MD5), refuse wrong credentials
//! and replayed nonce counts with 403, mark expired nonces stale, and let the right
//! credentials into a room where both parties hear each other. The testkit UA computes its
//! answers with its own hashing, not the server's.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use huddle_testkit::{
    digest_authorization, digest_hex, digest_param, tone_share, Msg, RtpPeer, ServerProcess, SipUa,
};

const REALM: &str = "huddle-test";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_huddle"))
}

/// Users: alice with a password; bob with both HA1 values (computed here); carol with an MD5
/// HA1 only. `agent-*` and `customer-*` join a room and require auth; `open-*` does not.
fn server(extra_sip: &str) -> ServerProcess {
    let bob_md5 = digest_hex("MD5", &format!("bob:{REALM}:builder")).unwrap();
    let bob_sha = digest_hex("SHA-256", &format!("bob:{REALM}:builder")).unwrap();
    let carol_md5 = digest_hex("MD5", &format!("carol:{REALM}:carrots")).unwrap();
    let sip = format!(
        "auth_realm = \"{REALM}\"\n{extra_sip}\n\
         [[sip.user]]\nusername = \"alice\"\npassword = \"wonderland\"\n\
         [[sip.user]]\nusername = \"bob\"\nha1 = \"{bob_md5}\"\nha1_sha256 = \"{bob_sha}\"\n\
         [[sip.user]]\nusername = \"carol\"\nha1 = \"{carol_md5}\"\n"
    );
    let routes = "[[route]]\nuser = \"^(?P<role>agent|customer)-(?P<mpc>[a-z0-9]+)$\"\n\
         xml = '<Response><MultiPartyCall role=\"$role\" enterSound=\"none\" exitSound=\"none\" stayAlone=\"true\">$mpc</MultiPartyCall></Response>'\n\
         auth = true\n\
         [[route]]\nuser = \"^open-(?P<mpc>[a-z0-9]+)$\"\n\
         xml = '<Response><MultiPartyCall role=\"customer\" enterSound=\"none\" exitSound=\"none\" stayAlone=\"true\">$mpc</MultiPartyCall></Response>'\n";
    ServerProcess::start_with(bin(), 20, |slots| slots.standard(&sip, "", routes))
}

fn challenges(resp: &Msg) -> Vec<&str> {
    resp.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("WWW-Authenticate"))
        .map(|(_, v)| v.as_str())
        .collect()
}

fn auth_failed(srv: &ServerProcess) -> f64 {
    srv.metric("huddle_sip_refused_total{reason=\"auth_failed\"}")
}

/// Calls `user` as `username`/`password` with `algorithm`; the final response must be a 200
/// after exactly one challenge. Returns the dialog, its RTP peer and where to send media.
async fn authenticated(
    sip: SocketAddr,
    user: &str,
    username: &str,
    password: &str,
    algorithm: &str,
) -> (SipUa, RtpPeer, SocketAddr) {
    let mut ua = SipUa::udp(sip).await;
    let rtp = RtpPeer::bind().await;
    let (ok, seen) = ua
        .invite_authenticated(
            user,
            &SipUa::sdp(rtp.port(), &[0, 101]),
            username,
            password,
            Some(algorithm),
        )
        .await
        .unwrap_or_else(|| panic!("{user}: no final response"));
    assert_eq!(ok.status(), 200, "{user} as {username}: {}", ok.start);
    assert_eq!(seen.len(), 1, "one challenge");
    let auth = ua.last_authorization.clone().unwrap();
    assert_eq!(
        digest_param(&auth, "algorithm").as_deref(),
        Some(algorithm),
        "{auth}"
    );
    ua.ack().await;
    let media = ok.sdp_audio().expect("SDP answer with audio");
    (ua, rtp, media)
}

#[tokio::test]
async fn no_credentials_get_401_offering_sha256_then_md5() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let srv = server("");
        let mut ua = SipUa::udp(srv.sip).await;
        let text = ua.invite_text("agent-nocreds", &SipUa::sdp(4000, &[0]));
        ua.send_raw(text.as_bytes()).await;
        let first = ua.recv(Duration::from_secs(3)).await.expect("an answer");
        assert_eq!(
            first.status(),
            401,
            "the first answer, no 100 Trying: {}",
            first.start
        );
        let offered = challenges(&first);
        assert_eq!(offered.len(), 2, "{first:?}");
        assert_eq!(
            digest_param(offered[0], "algorithm").as_deref(),
            Some("SHA-256")
        );
        assert_eq!(
            digest_param(offered[1], "algorithm").as_deref(),
            Some("MD5")
        );
        for c in &offered {
            assert!(c.starts_with("Digest "), "{c}");
            assert_eq!(digest_param(c, "realm").as_deref(), Some(REALM));
            assert_eq!(digest_param(c, "qop").as_deref(), Some("auth"));
            assert!(digest_param(c, "stale").is_none());
        }
        assert!(first.header("To").unwrap().contains(";tag="));
        ua.ack_failure(&first).await;
        // The ACK ends the transaction: no retransmitted 401 follows.
        assert!(ua.recv(Duration::from_millis(800)).await.is_none());
        assert_eq!(srv.metric("huddle_sip_auth_challenges_total"), 1.0);
        assert_eq!(
            srv.metric("huddle_calls_total"),
            0.0,
            "no call for a challenge"
        );
        // A route without auth = true is not challenged.
        let mut open = SipUa::udp(srv.sip).await;
        let ok = open
            .invite("open-nocreds", &SipUa::sdp(4002, &[0]))
            .await
            .expect("answered");
        assert_eq!(ok.status(), 200, "{}", ok.start);
        open.ack().await;
        open.bye().await.expect("BYE answered");
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn wrong_credentials_and_unknown_users_get_403_not_another_401() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let srv = server("");
        for (username, password, algorithm) in [
            ("alice", "guess", "SHA-256"),
            ("alice", "guess", "MD5"),
            ("bob", "wonderland", "MD5"),
            ("mallory", "wonderland", "SHA-256"),
        ] {
            let mut ua = SipUa::udp(srv.sip).await;
            let (resp, seen) = ua
                .invite_authenticated(
                    "agent-wrong",
                    &SipUa::sdp(4000, &[0]),
                    username,
                    password,
                    Some(algorithm),
                )
                .await
                .expect("a final response");
            assert_eq!(resp.status(), 403, "{username}/{algorithm}: {}", resp.start);
            assert_eq!(seen.len(), 1, "one challenge, then 403");
        }
        assert_eq!(auth_failed(&srv), 4.0);
        assert_eq!(srv.metric("huddle_calls_total"), 0.0);
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn right_credentials_md5_and_sha256_join_a_room_and_hear_each_other() {
    tokio::time::timeout(Duration::from_secs(40), async {
        let srv = server("");
        const AGENT: f64 = 710.0;
        const CUSTOMER: f64 = 430.0;
        let (mut agent, mut agent_rtp, agent_media) =
            authenticated(srv.sip, "agent-sales", "alice", "wonderland", "SHA-256").await;
        let (mut customer, mut customer_rtp, customer_media) =
            authenticated(srv.sip, "customer-sales", "bob", "builder", "MD5").await;
        let duration = Duration::from_secs(2);
        let (agent_heard, customer_heard) = tokio::join!(
            agent_rtp.talk(agent_media, AGENT, duration),
            customer_rtp.talk(customer_media, CUSTOMER, duration),
        );
        let last = |pcm: &[i16]| pcm[pcm.len().saturating_sub(8000)..].to_vec();
        let (a, c) = (last(&agent_heard), last(&customer_heard));
        assert!(
            tone_share(&a, CUSTOMER) > 0.05,
            "the agent hears the customer"
        );
        assert!(tone_share(&c, AGENT) > 0.05, "the customer hears the agent");
        assert!(
            tone_share(&a, AGENT) < 0.005,
            "the agent does not hear itself"
        );
        assert!(
            tone_share(&c, CUSTOMER) < 0.005,
            "the customer does not hear itself"
        );
        assert_eq!(agent.bye().await.expect("BYE answered").status(), 200);
        assert_eq!(customer.bye().await.expect("BYE answered").status(), 200);
        // bob's SHA-256 HA1 works as well as his MD5 one; carol has only MD5 and is offered it.
        let (mut b, _, _) =
            authenticated(srv.sip, "agent-other", "bob", "builder", "SHA-256").await;
        b.bye().await;
        let mut carol = SipUa::udp(srv.sip).await;
        let (ok, seen) = carol
            .invite_authenticated(
                "agent-other",
                &SipUa::sdp(4000, &[0]),
                "carol",
                "carrots",
                None,
            )
            .await
            .expect("a final response");
        assert_eq!(
            seen.len(),
            2,
            "SHA-256 first, then a challenge offering MD5 only"
        );
        let second = challenges(&seen[1]);
        assert_eq!(second.len(), 1);
        assert_eq!(digest_param(second[0], "algorithm").as_deref(), Some("MD5"));
        assert_eq!(ok.status(), 200, "{}", ok.start);
        carol.ack().await;
        carol.bye().await;
        assert_eq!(auth_failed(&srv), 0.0);
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn a_replayed_nonce_count_is_refused() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let srv = server("");
        let (mut ua, _rtp, _) =
            authenticated(srv.sip, "agent-replay", "alice", "wonderland", "SHA-256").await;
        let captured = ua.last_authorization.clone().unwrap();
        ua.bye().await;
        // The captured Authorization again, in a new call from another UA: 403.
        let mut thief = SipUa::udp(srv.sip).await;
        let header = format!("Authorization: {captured}\r\n");
        let resp = thief
            .invite_with("agent-replay", &SipUa::sdp(4000, &[0]), &header)
            .await
            .expect("a final response");
        assert_eq!(resp.status(), 403, "{}", resp.start);
        // From the same UA in a new call, too.
        ua.new_call();
        let resp = ua
            .invite_with("agent-replay", &SipUa::sdp(4000, &[0]), &header)
            .await
            .expect("a final response");
        assert_eq!(resp.status(), 403, "{}", resp.start);
        // The same nonce with a higher count and a fresh response is a legitimate reuse.
        let nonce = digest_param(&captured, "nonce").unwrap();
        let challenge =
            format!("Digest realm=\"{REALM}\", nonce=\"{nonce}\", algorithm=SHA-256, qop=\"auth\"");
        ua.new_call();
        let uri = ua.request_uri("agent-replay");
        let next = digest_authorization(
            &challenge,
            "INVITE",
            &uri,
            "alice",
            "wonderland",
            2,
            "fresh",
        )
        .unwrap();
        let resp = ua
            .invite_with(
                "agent-replay",
                &SipUa::sdp(4000, &[0]),
                &format!("Authorization: {next}\r\n"),
            )
            .await
            .expect("a final response");
        assert_eq!(resp.status(), 200, "{}", resp.start);
        ua.ack().await;
        ua.bye().await;
        // ...but a lower count after it is not.
        ua.new_call();
        let resp = ua
            .invite_with("agent-replay", &SipUa::sdp(4000, &[0]), &header)
            .await
            .expect("a final response");
        assert_eq!(resp.status(), 403, "{}", resp.start);
        assert_eq!(auth_failed(&srv), 3.0);
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn an_expired_nonce_gets_a_stale_challenge_and_the_fresh_one_works() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let srv = server("auth_nonce_lifetime_secs = 1");
        let mut ua = SipUa::udp(srv.sip).await;
        let sdp = SipUa::sdp(4000, &[0]);
        let first = ua
            .invite_with("agent-stale", &sdp, "")
            .await
            .expect("a challenge");
        assert_eq!(first.status(), 401);
        let old = challenges(&first)[0].to_string();
        // The scenario: deliberately past the 1 s nonce lifetime the test is about.
        tokio::time::sleep(Duration::from_millis(2200)).await;
        let uri = ua.request_uri("agent-stale");
        let late =
            digest_authorization(&old, "INVITE", &uri, "alice", "wonderland", 1, "c1").unwrap();
        ua.next_invite();
        let stale = ua
            .invite_with("agent-stale", &sdp, &format!("Authorization: {late}\r\n"))
            .await
            .expect("a final response");
        assert_eq!(stale.status(), 401, "{}", stale.start);
        let fresh = challenges(&stale);
        assert_eq!(fresh.len(), 2);
        assert!(
            fresh
                .iter()
                .all(|c| digest_param(c, "stale").is_some_and(|s| s.eq_ignore_ascii_case("true"))),
            "{fresh:?}"
        );
        assert_ne!(digest_param(fresh[0], "nonce"), digest_param(&old, "nonce"));
        let now =
            digest_authorization(fresh[0], "INVITE", &uri, "alice", "wonderland", 1, "c2").unwrap();
        ua.next_invite();
        let ok = ua
            .invite_with("agent-stale", &sdp, &format!("Authorization: {now}\r\n"))
            .await
            .expect("a final response");
        assert_eq!(ok.status(), 200, "{}", ok.start);
        ua.ack().await;
        ua.bye().await;
        // A wrong password on an expired nonce is refused, not marked stale (again waiting
        // past the nonce lifetime on purpose).
        tokio::time::sleep(Duration::from_millis(2200)).await;
        let wrong =
            digest_authorization(fresh[0], "INVITE", &uri, "alice", "guess", 1, "c3").unwrap();
        ua.new_call();
        let resp = ua
            .invite_with("agent-stale", &sdp, &format!("Authorization: {wrong}\r\n"))
            .await
            .expect("a final response");
        assert_eq!(resp.status(), 403, "{}", resp.start);
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn hostile_authorization_headers_get_400_401_or_403_and_the_server_survives() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let mut srv = server("");
        let mut ua = SipUa::udp(srv.sip).await;
        let sdp = SipUa::sdp(4000, &[0]);
        let first = ua
            .invite_with("agent-hostile", &sdp, "")
            .await
            .expect("a challenge");
        let challenge = challenges(&first)[1].to_string(); // MD5
        let uri = ua.request_uri("agent-hostile");
        let good =
            digest_authorization(&challenge, "INVITE", &uri, "alice", "wonderland", 1, "c")
                .unwrap();
        let nonce = digest_param(&challenge, "nonce").unwrap();
        let huge = "A".repeat(20_000);
        // Malformed: 400 naming the problem; not ours to judge (another scheme or realm, a
        // nonce we did not issue, an algorithm we do not offer): a fresh 401.
        let cases: Vec<(String, u16)> = vec![
            ("garbage".into(), 401),
            ("Digest".into(), 400),
            ("Digest ,,,,".into(), 400),
            ("Digest =\"\"".into(), 400),
            ("Digest username=\"alice".into(), 400),
            ("Digest username=\"a\\".into(), 400),
            (format!("Digest realm=\"{REALM}\""), 400),
            (
                format!("Digest username=\"alice\", realm=\"{REALM}\", nonce=\"{nonce}\""),
                400,
            ),
            (good.replace("response=\"", "response=\"xyz"), 400),
            (good.replace("response=\"", "response=\"0"), 400),
            (good.replace("nc=00000001", "nc=zzzzzzzz"), 400),
            (good.replace("nc=00000001", "nc=00000000"), 400),
            (good.replace(", qop=auth", ""), 400),
            (good.replace(&nonce, "not-a-nonce"), 401),
            (good.replace(&nonce, &"f".repeat(64)), 401),
            (good.replace("algorithm=MD5", "algorithm=SHA-512"), 401),
            (good.replace(&uri, "sip:customer-hostile@127.0.0.1"), 400),
            (format!("{good}, username=\"bob\""), 400),
            (format!("Digest username=\"{huge}\", realm=\"{REALM}\""), 400),
            (format!("Digest realm=\"{REALM}\", {}", "x=y, ".repeat(600)), 400),
            ("Digest username=\"\u{7f}\u{1}\", realm=\"\u{0}\"".into(), 401),
            (
                "Digest username=\"ü\", realm=\"ß\", nonce=\"€\", uri=\"☃\", response=\"✓\"".into(),
                401,
            ),
        ];
        for (i, (auth, expected)) in cases.iter().enumerate() {
            ua.new_call();
            let resp = ua
                .invite_with(
                    "agent-hostile",
                    &sdp,
                    &format!("Authorization: {auth}\r\n"),
                )
                .await;
            let status = resp.as_ref().map(|r| r.status()).unwrap_or(0);
            assert_eq!(
                status,
                *expected,
                "case {i} ({}...): {:?}",
                &auth[..auth.len().min(60)],
                resp.map(|r| r.start)
            );
        }
        let malformed = cases.iter().filter(|(_, s)| *s == 400).count();
        assert_eq!(
            auth_failed(&srv),
            malformed as f64,
            "every 400 is counted as a refusal"
        );
        // Two Authorization headers, one for another realm: ours counts.
        ua.new_call();
        let resp = ua
            .invite_with(
                "agent-hostile",
                &sdp,
                &format!("Authorization: Digest realm=\"elsewhere\", username=\"x\"\r\nAuthorization: {good}\r\n"),
            )
            .await
            .expect("a final response");
        assert_eq!(resp.status(), 200, "{}", resp.start);
        ua.ack().await;
        ua.bye().await;
        assert!(srv.is_running(), "the server survived: {}", srv.log());
        let (mut after, _, _) =
            authenticated(srv.sip, "agent-hostile", "alice", "wonderland", "SHA-256").await;
        after.bye().await;
    })
    .await
    .expect("timed out");
}
