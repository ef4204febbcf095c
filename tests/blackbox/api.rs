//! The MPC REST API over real HTTP against a server with real calls in its rooms: Plivo's
//! paths, auth, object shapes and status codes, and commands whose effect is checked by ear.

use std::net::SocketAddr;
use std::time::Duration;

use huddle_testkit::{tone_share, RtpPeer, ServerProcess, SipUa};
use serde_json::{json, Value};

use super::{answered, server, Api, ACCOUNT};

const CUSTOMER: f64 = 470.0;
const AGENT: f64 = 1170.0;

fn routes() -> String {
    "[[route]]\nuser = \"^(?P<role>agent|customer|supervisor)-(?P<mpc>[a-z0-9]+)$\"\n\
     xml = '<Response><MultiPartyCall role=\"$role\" enterSound=\"none\" exitSound=\"none\" stayAlone=\"true\">$mpc</MultiPartyCall></Response>'\n\
     [[route]]\nuser = \"^later-(?P<mpc>[a-z0-9]+)$\"\n\
     xml = '<Response><MultiPartyCall role=\"customer\" startMpcOnEnter=\"false\" enterSound=\"none\" exitSound=\"none\" stayAlone=\"true\">$mpc</MultiPartyCall></Response>'\n"
        .to_string()
}

struct Party {
    ua: SipUa,
    rtp: RtpPeer,
    media: SocketAddr,
}

async fn join(sip: SocketAddr, user: &str) -> Party {
    let (ua, rtp, media) = answered(sip, user).await;
    Party { ua, rtp, media }
}

/// Both talk at once for `ms`; returns what each heard in the second half.
async fn exchange(
    a: &mut Party,
    tone_a: f64,
    b: &mut Party,
    tone_b: f64,
    ms: u64,
) -> (Vec<i16>, Vec<i16>) {
    let d = Duration::from_millis(ms);
    let (heard_a, heard_b) = tokio::join!(
        a.rtp.talk(a.media, tone_a, d),
        b.rtp.talk(b.media, tone_b, d)
    );
    let tail = |v: Vec<i16>| v[v.len() / 2..].to_vec();
    (tail(heard_a), tail(heard_b))
}

fn hears(pcm: &[i16], freq: f64) -> bool {
    tone_share(pcm, freq) > 0.05
}

fn member(object: &Value, role: &str) -> String {
    object["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["role"] == role)
        .unwrap_or_else(|| panic!("a {role} in {object}"))["member_id"]
        .as_str()
        .expect("member_id is a string")
        .to_string()
}

#[tokio::test]
async fn operators_mute_hold_kick_and_end_through_the_api() {
    tokio::time::timeout(Duration::from_secs(90), async {
        let srv = server(&routes(), 40);
        let api = Api::new(&srv);
        let mut customer = join(srv.sip, "customer-desk").await;
        let mut agent = join(srv.sip, "agent-desk").await;
        let (c_heard, a_heard) = exchange(&mut customer, CUSTOMER, &mut agent, AGENT, 800).await;
        assert!(hears(&a_heard, CUSTOMER) && hears(&c_heard, AGENT));

        let (status, mpc) = api.get("name_desk/").await;
        assert_eq!(status, 200, "{mpc}");
        assert_eq!(mpc["friendly_name"], "desk");
        assert_eq!(mpc["status"], "Active");
        assert!(mpc["api_id"].is_string());
        assert!(mpc["end_time"].is_null() && mpc["termination_cause_code"].is_null());
        let uuid = mpc["mpc_uuid"].as_str().unwrap().to_string();
        assert_eq!(
            mpc["resource_uri"],
            format!("/v1/Account/{ACCOUNT}/MultiPartyCall/uuid_{uuid}/")
        );

        let (status, list) = api.get("name_desk/Participant/").await;
        assert_eq!(status, 200);
        assert_eq!(list["meta"]["count"], 2);
        let customer_id = member(&list, "customer");
        let agent_id = member(&list, "agent");
        assert!(customer_id.parse::<u64>().is_ok());

        // Mute the customer: the agent stops hearing it, the customer still hears the agent.
        let (status, reply) = api
            .send(
                "POST",
                &format!("name_desk/Participant/{customer_id}/"),
                Some(json!({"mute": true})),
            )
            .await;
        assert_eq!(status, 200, "{reply}");
        assert_eq!(reply["mute"], "MPC: desk mute member(s) succeeded");
        let (c_heard, a_heard) = exchange(&mut customer, CUSTOMER, &mut agent, AGENT, 800).await;
        assert!(!hears(&a_heard, CUSTOMER), "a muted customer is not heard");
        assert!(hears(&c_heard, AGENT), "a muted customer still hears");
        let (_, p) = api
            .get(&format!("uuid_{uuid}/Participant/{customer_id}/"))
            .await;
        assert_eq!(p["mute"], true);
        assert_eq!(p["role"], "customer");

        // Unmute (a string boolean, as some SDKs send) and hold the agent in one request.
        let (status, reply) = api
            .send(
                "POST",
                &format!("name_desk/Participant/{customer_id},{agent_id}/"),
                Some(json!({"mute": "false"})),
            )
            .await;
        assert_eq!(status, 200, "{reply}");
        let (status, _) = api
            .send(
                "POST",
                &format!("name_desk/Participant/{agent_id}/"),
                Some(json!({"hold": true})),
            )
            .await;
        assert_eq!(status, 200);
        let (c_heard, _) = exchange(&mut customer, CUSTOMER, &mut agent, AGENT, 800).await;
        assert!(!hears(&c_heard, AGENT), "an agent on hold is not heard");

        // Kick the customer: its call is hung up and its entry says why.
        let (status, body) = api
            .send(
                "DELETE",
                &format!("name_desk/Participant/{customer_id}/"),
                None,
            )
            .await;
        assert_eq!((status, body), (204, Value::Null));
        let bye = customer
            .ua
            .recv_until(Duration::from_secs(3), |m| m.start.starts_with("BYE "))
            .await
            .expect("the kicked call gets BYE");
        customer.ua.reply_ok(&bye).await;
        let (_, p) = api
            .get(&format!("name_desk/Participant/{customer_id}/"))
            .await;
        assert_eq!(p["exit_cause"], "Kicked Out of Multiparty Call");
        assert!(p["exit_time"].is_string() && p["mute"].is_null());

        // End the MPC: it is then found by uuid only, ended by the API.
        let (status, _) = api
            .send(
                "DELETE",
                "name_desk/",
                Some(json!({"friendly_name": "desk"})),
            )
            .await;
        assert_eq!(status, 204);
        let bye = agent
            .ua
            .recv_until(Duration::from_secs(3), |m| m.start.starts_with("BYE "))
            .await
            .expect("the agent's document ends after the MPC");
        agent.ua.reply_ok(&bye).await;
        let ended = api
            .wait_json(&format!("uuid_{uuid}/"), Duration::from_secs(5), |v| {
                v["status"] == "Ended"
            })
            .await;
        assert_eq!(ended["termination_cause_code"], 3000);
        assert_eq!(ended["termination_cause"], "Hangup API Triggered");
        assert!(ended["duration"].is_u64());
        assert_eq!(api.get("name_desk/").await.0, 404);
        let (_, list) = api.get("?status=ended&friendly_name=desk").await;
        assert_eq!(list["meta"]["count"], 1);
        assert_eq!(list["objects"][0]["mpc_uuid"], uuid);
        let (_, all) = api.get(&format!("uuid_{uuid}/Participant/")).await;
        assert!(all["objects"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["exit_time"].is_string()));
        assert_eq!(
            api.send("DELETE", &format!("uuid_{uuid}/"), None).await.0,
            404
        );
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn an_initialized_mpc_starts_through_the_api() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let srv = server(&routes(), 20);
        let api = Api::new(&srv);
        let _customer = join(srv.sip, "later-queue").await;
        let (_, mpc) = api.get("name_queue/").await;
        assert_eq!(mpc["status"], "Initialized");
        assert!(mpc["start_time"].is_null());
        // Python sends the status as a one-element list.
        let (status, body) = api
            .send("POST", "name_queue/", Some(json!({"status": ["active"]})))
            .await;
        assert_eq!(status, 204, "{body}");
        let (_, mpc) = api.get("name_queue/").await;
        assert_eq!(mpc["status"], "Active");
        assert!(mpc["start_time"].is_string());
        let (status, body) = api
            .send("POST", "name_queue/", Some(json!({"status": "active"})))
            .await;
        assert_eq!(status, 404, "an active MPC cannot be started again: {body}");
        assert!(body["error"].is_string());
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn bad_requests_get_clear_json_errors() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let srv = server(&routes(), 20);
        let api = Api::new(&srv);
        let _agent = join(srv.sip, "agent-err").await;
        let _customer = join(srv.sip, "customer-err").await;
        let (_, list) = api.get("name_err/Participant/").await;
        let customer_id = member(&list, "customer");
        let http = reqwest::Client::new();

        // Authentication: none, a wrong token, another account.
        let url = format!("http://{}/v1/Account/{ACCOUNT}/MultiPartyCall/", srv.http);
        let none = http.get(&url).send().await.unwrap();
        assert_eq!(none.status().as_u16(), 401);
        let wrong = http
            .get(&url)
            .basic_auth(ACCOUNT, Some("guess"))
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status().as_u16(), 401);
        let body: Value = wrong.json().await.unwrap();
        assert!(body["error"].is_string() && body["api_id"].is_string());
        let other = http
            .get(url.replace(ACCOUNT, "MAOTHERACCOUNT000000"))
            .basic_auth(ACCOUNT, Some("change-me"))
            .send()
            .await
            .unwrap();
        assert_eq!(other.status().as_u16(), 404);

        let participant = format!("name_err/Participant/{customer_id}/");
        let cases: Vec<(&str, String, Option<Value>, u16)> = vec![
            ("GET", "name_nosuch/".into(), None, 404),
            ("GET", "room-without-prefix/".into(), None, 404),
            ("GET", "?limit=50".into(), None, 400),
            ("GET", "?status=sleeping".into(), None, 400),
            ("GET", "?end_time__gt=yesterday".into(), None, 400),
            ("POST", participant.clone(), Some(json!({})), 400),
            (
                "POST",
                participant.clone(),
                Some(json!({"mute": "perhaps"})),
                400,
            ),
            (
                "POST",
                participant.clone(),
                Some(json!({"coach_mode": true})),
                400,
            ),
            (
                "POST",
                "name_err/Participant/all/".into(),
                Some(json!({"coach_mode": false})),
                400,
            ),
            (
                "POST",
                "name_err/Participant/abc/".into(),
                Some(json!({"mute": true})),
                400,
            ),
            (
                "POST",
                "name_err/Participant/999999/".into(),
                Some(json!({"mute": true})),
                404,
            ),
            ("GET", "name_err/Participant/999999/".into(), None, 404),
            (
                "POST",
                "name_err/".into(),
                Some(json!({"status": "paused"})),
                400,
            ),
            (
                "POST",
                "name_err/Member/all/Play/".into(),
                Some(json!({"url": "ftp://x/a.mp3"})),
                400,
            ),
            (
                "POST",
                "name_err/Member/all/Play/".into(),
                Some(json!({})),
                400,
            ),
            (
                "POST",
                "name_err/Participant/".into(),
                Some(json!({"role": "agent"})),
                400,
            ),
            (
                "POST",
                "name_err/Participant/".into(),
                Some(json!({"role": "agent", "call_uuid": "x", "max_participants": 99})),
                400,
            ),
            (
                "POST",
                format!("name_err/Participant/{customer_id}/Record/"),
                Some(json!({"record_track_type": "mono"})),
                400,
            ),
            ("PUT", "name_err/".into(), None, 405),
        ];
        for (method, path, body, expected) in cases {
            let (status, reply) = api.send(method, &path, body).await;
            assert_eq!(status, expected, "{method} {path}: {reply}");
            assert!(
                reply["error"].is_string(),
                "{method} {path}: a JSON error, got {reply}"
            );
        }
        // A body that is not JSON at all.
        let raw = http
            .post(format!("{}{participant}", api.base))
            .basic_auth(ACCOUNT, Some("change-me"))
            .header("content-type", "application/json")
            .body("{mute: yes")
            .send()
            .await
            .unwrap();
        assert_eq!(raw.status().as_u16(), 400);

        // Nothing above changed the MPC; a good request still works.
        let (status, reply) = api
            .send(
                "POST",
                "name_err/Member/all/Play/",
                Some(json!({"url": "http://127.0.0.1:9/a.mp3"})),
            )
            .await;
        assert_eq!(status, 202, "{reply}");
        assert_eq!(reply["message"], "play queued into MPC");
        assert_eq!(reply["mpcName"], "err");
        assert_eq!(reply["mpcMemberId"].as_array().unwrap().len(), 2);
        let (_, p) = api.get(&participant).await;
        assert_eq!(p["mute"], false);
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn coach_mode_through_the_api_decides_whether_the_customer_hears_the_supervisor() {
    tokio::time::timeout(Duration::from_secs(60), async {
        const SUPERVISOR: f64 = 1630.0;
        let srv = server(&routes(), 30);
        let api = Api::new(&srv);
        let mut customer = join(srv.sip, "customer-coach").await;
        let _agent = join(srv.sip, "agent-coach").await;
        let mut supervisor = join(srv.sip, "supervisor-coach").await;
        let (heard, _) = exchange(&mut customer, 0.0, &mut supervisor, SUPERVISOR, 800).await;
        assert!(
            !hears(&heard, SUPERVISOR),
            "a coaching supervisor is not heard by the customer"
        );

        let (_, list) = api.get("name_coach/Participant/").await;
        let supervisor_id = member(&list, "supervisor");
        assert_eq!(
            list["objects"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["role"] == "supervisor")
                .unwrap()["coach_mode"],
            true
        );
        let (status, reply) = api
            .send(
                "POST",
                &format!("name_coach/Participant/{supervisor_id}/"),
                Some(json!({"coach_mode": false})),
            )
            .await;
        assert_eq!(status, 200, "{reply}");
        assert_eq!(
            reply["coach_mode"],
            "MPC: coach coach_mode disable succeeded"
        );
        let (heard, _) = exchange(&mut customer, 0.0, &mut supervisor, SUPERVISOR, 800).await;
        assert!(hears(&heard, SUPERVISOR), "a barging supervisor is heard");
        let (_, p) = api
            .get(&format!("name_coach/Participant/{supervisor_id}/"))
            .await;
        assert_eq!(p["coach_mode"], false);
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn a_play_is_heard_by_its_members_until_it_is_stopped_with_the_same_target() {
    tokio::time::timeout(Duration::from_secs(60), async {
        const PROMPT: f64 = 880.0;
        let stub = huddle_testkit::HttpStub::start().await;
        stub.serve(
            "/long.wav",
            200,
            "audio/wav",
            huddle_testkit::wav_tone(PROMPT, 20.0, 8000),
        );
        let srv = server(&routes(), 20);
        let api = Api::new(&srv);
        let mut customer = join(srv.sip, "customer-play").await;
        let mut agent = join(srv.sip, "agent-play").await;
        let (_, list) = api.get("name_play/Participant/").await;
        let customer_id = member(&list, "customer");

        let (status, reply) = api
            .send(
                "POST",
                &format!("name_play/Member/{customer_id}/Play/"),
                Some(json!({"url": stub.url("/long.wav")})),
            )
            .await;
        assert_eq!(status, 202, "{reply}");
        assert_eq!(reply["mpcMemberId"], json!([customer_id]));
        let (c_heard, a_heard) = exchange(&mut customer, 0.0, &mut agent, 0.0, 1200).await;
        assert!(hears(&c_heard, PROMPT), "the member hears the play");
        assert!(!hears(&a_heard, PROMPT), "the others do not");

        // A stop for all does not stop a play started for one member (Plivo's rule).
        let (status, _) = api.send("DELETE", "name_play/Member/all/Play/", None).await;
        assert_eq!(status, 204);
        let (c_heard, _) = exchange(&mut customer, 0.0, &mut agent, 0.0, 600).await;
        assert!(hears(&c_heard, PROMPT), "still playing");

        let (status, _) = api
            .send(
                "DELETE",
                &format!("name_play/Member/{customer_id}/Play/"),
                None,
            )
            .await;
        assert_eq!(status, 204);
        let (c_heard, _) = exchange(&mut customer, 0.0, &mut agent, 0.0, 600).await;
        assert!(!hears(&c_heard, PROMPT), "stopped");
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn a_waiting_call_is_moved_into_an_mpc_and_on_to_another() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let stub = huddle_testkit::HttpStub::start().await;
        stub.serve_xml("/answer", "<Response><Wait length=\"60\"/></Response>");
        let extra = format!(
            "{}[[route]]\nuser = \"^waiting$\"\nanswer_url = \"{}\"\n",
            routes(),
            stub.url("/answer")
        );
        let srv = server(&extra, 30);
        let api = Api::new(&srv);
        let mut caller = join(srv.sip, "waiting").await;
        let asked = stub.wait_for("/answer", 1, Duration::from_secs(5)).await;
        let call_uuid = asked[0].param("CallUUID").expect("CallUUID").to_string();
        let mut agent = join(srv.sip, "agent-sales").await;
        let (heard, _) = exchange(&mut agent, AGENT, &mut caller, CUSTOMER, 600).await;
        assert!(!hears(&heard, CUSTOMER), "the caller is still waiting elsewhere");

        let (status, reply) = api
            .send(
                "POST",
                "name_sales/Participant/",
                Some(json!({"role": "customer", "call_uuid": call_uuid, "enter_sound": "none", "stay_alone": true})),
            )
            .await;
        assert_eq!(status, 201, "{reply}");
        assert_eq!(reply["message"], "add participant action initiated");
        assert_eq!(reply["calls"][0]["call_uuid"], call_uuid.as_str());
        assert!(reply["request_uuid"].is_string());
        let (a_heard, c_heard) = exchange(&mut agent, AGENT, &mut caller, CUSTOMER, 1000).await;
        assert!(hears(&a_heard, CUSTOMER), "the agent hears the moved caller");
        assert!(hears(&c_heard, AGENT), "the moved caller hears the agent");
        let (_, list) = api
            .get(&format!("name_sales/Participant/?call_uuid={call_uuid}"))
            .await;
        assert_eq!(list["meta"]["count"], 1);
        assert_eq!(list["objects"][0]["role"], "customer");

        // On to another MPC: it leaves the first.
        let (status, reply) = api
            .send(
                "POST",
                "name_vip/Participant/",
                Some(json!({"role": "customer", "call_uuid": call_uuid})),
            )
            .await;
        assert_eq!(status, 201, "{reply}");
        let vip = api
            .wait_json("name_vip/Participant/", Duration::from_secs(5), |v| {
                v["meta"]["count"] == 1
            })
            .await;
        assert_eq!(vip["objects"][0]["call_uuid"], call_uuid.as_str(), "{vip}");
        let (_, sales) = api
            .get(&format!("name_sales/Participant/?call_uuid={call_uuid}"))
            .await;
        assert!(sales["objects"][0]["exit_time"].is_string(), "{sales}");
        assert_eq!(
            sales["objects"][0]["exit_cause"], "Participant Call Transferred",
            "{sales}"
        );

        let (status, reply) = api
            .send(
                "POST",
                "name_sales/Participant/",
                Some(json!({"role": "agent", "call_uuid": "no-such-call"})),
            )
            .await;
        assert_eq!(status, 404, "{reply}");
        let (status, reply) = api
            .send(
                "POST",
                "name_sales/Participant/",
                Some(json!({"role": "agent", "call_uuid": call_uuid, "from": "1000"})),
            )
            .await;
        assert_eq!(status, 400, "{reply}");
    })
    .await
    .expect("timed out");
}

/// A free UDP port for a test trunk (bound and released: the server dials it later).
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port()
}

/// A server whose `[sip.trunk]` is a test user agent, which it returns with the API client.
async fn server_with_trunk() -> (ServerProcess, Api, SipUa) {
    let trunk_port = free_udp_port();
    let extra = format!(
        "{}[sip.trunk]\nuri = \"sip:127.0.0.1:{trunk_port}\"\n",
        routes()
    );
    let srv = server(&extra, 30);
    let api = Api::new(&srv);
    let trunk = SipUa::udp_on(trunk_port, srv.sip).await;
    (srv, api, trunk)
}

#[tokio::test]
async fn a_participant_is_dialled_out_through_the_trunk_and_joins_when_answered() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let (srv, api, mut trunk) = server_with_trunk().await;
        let mut agent = join(srv.sip, "agent-out").await;

        let (status, reply) = api
            .send(
                "POST",
                "name_out/Participant/",
                Some(json!({"role": "customer", "from": "+14155550100", "to": "5551234", "enter_sound": "none"})),
            )
            .await;
        assert_eq!(status, 201, "{reply}");
        let call_uuid = reply["calls"][0]["call_uuid"].as_str().unwrap().to_string();
        assert_eq!(reply["calls"][0]["to"], "5551234");

        // The trunk sees our INVITE with an offer, rings, then answers.
        let invite = trunk
            .recv_until(Duration::from_secs(5), |m| m.start.starts_with("INVITE "))
            .await
            .expect("an INVITE at the trunk");
        assert!(invite.start.contains("5551234"), "{}", invite.start);
        assert!(invite.header("From").unwrap().contains("+14155550100"));
        assert!(invite.body.contains("m=audio"), "an SDP offer");
        trunk.answer_invite(&invite, 180, "Ringing", "").await;
        let callee_rtp = RtpPeer::bind().await;
        let sdp = SipUa::sdp(callee_rtp.port(), &[0, 101]);
        trunk.answer_invite(&invite, 200, "OK", &sdp).await;
        trunk
            .recv_until(Duration::from_secs(3), |m| m.start.starts_with("ACK "))
            .await
            .expect("the 200 is acknowledged");
        let offer_port: u16 = invite
            .body
            .lines()
            .find_map(|l| l.strip_prefix("m=audio "))
            .and_then(|rest| rest.split(' ').next())
            .and_then(|p| p.parse().ok())
            .expect("our RTP port in the offer");
        let mut callee = Party {
            ua: trunk,
            rtp: callee_rtp,
            media: SocketAddr::from(([127, 0, 0, 1], offer_port)),
        };
        let (a_heard, c_heard) = exchange(&mut agent, AGENT, &mut callee, CUSTOMER, 1200).await;
        assert!(hears(&a_heard, CUSTOMER), "the agent hears the dialled customer");
        assert!(hears(&c_heard, AGENT), "the dialled customer hears the agent");

        let (_, list) = api
            .get(&format!("name_out/Participant/?call_uuid={call_uuid}"))
            .await;
        assert_eq!(list["meta"]["count"], 1, "{list}");
        assert_eq!(list["objects"][0]["role"], "customer");

        // The agent leaves; the customer may not stay alone, so huddle hangs up the dialled leg.
        agent.ua.bye().await;
        let bye = callee
            .ua
            .recv_until(Duration::from_secs(5), |m| m.start.starts_with("BYE "))
            .await
            .expect("BYE to the dialled leg");
        callee.ua.reply_ok(&bye).await;
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn an_unanswered_dial_is_cancelled_at_its_ring_timeout() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let (srv, api, mut trunk) = server_with_trunk().await;
        let _agent = join(srv.sip, "agent-ring").await;
        let (status, reply) = api
            .send(
                "POST",
                "name_ring/Participant/",
                Some(
                    json!({"role": "agent", "from": "100", "to": "200<300", "ring_timeout": "1<1"}),
                ),
            )
            .await;
        assert_eq!(status, 201, "{reply}");
        assert_eq!(
            reply["calls"].as_array().unwrap().len(),
            2,
            "one leg per destination"
        );
        let mut invites = 0;
        let mut cancels = 0;
        let started = std::time::Instant::now();
        while started.elapsed() < Duration::from_secs(5) && cancels < 2 {
            let Some(m) = trunk.recv(Duration::from_secs(1)).await else {
                continue;
            };
            if m.start.starts_with("INVITE ") {
                invites += 1;
                trunk.answer_invite(&m, 180, "Ringing", "").await;
            } else if m.start.starts_with("CANCEL ") {
                cancels += 1;
                trunk.reply_ok(&m).await;
            }
        }
        assert_eq!(invites, 2, "both destinations are dialled");
        assert_eq!(cancels, 2, "both are cancelled after their ring timeout");
        let (_, list) = api.get("name_ring/Participant/").await;
        assert_eq!(list["meta"]["count"], 1, "nobody joined: {list}");
    })
    .await
    .expect("timed out");
}
