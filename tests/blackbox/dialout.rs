//! Add participant by dialling out (issue 16): what the trunk receives for each way of writing
//! `to`, `from` and the add-participant parameters that shape the outbound leg, checked by a
//! test user agent standing in for the trunk.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use huddle_events::signature::{self, V3, V3_NONCE};
use huddle_testkit::{
    tone_share, wav_tone, HttpStub, Msg, RtpPeer, ServerProcess, SipUa, StubRequest,
};
use huddle_xml::HttpMethod;
use serde_json::{json, Value};

use super::{answered, server, Api};

const AGENT: f64 = 1170.0;
const PROMPT: f64 = 700.0;

/// Rooms of calls that dial in, to have someone in the MPC the dialled leg joins.
fn routes() -> String {
    "[[route]]\nuser = \"^(?P<role>agent|customer)-(?P<mpc>[a-z0-9]+)$\"\n\
     xml = '<Response><MultiPartyCall role=\"$role\" enterSound=\"none\" exitSound=\"none\" stayAlone=\"true\">$mpc</MultiPartyCall></Response>'\n"
        .to_string()
}

/// A free UDP port for a test trunk (bound and released: the server dials it later).
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port()
}

/// A server whose `[sip.trunk]` is a test user agent (with `trunk_extra` lines in its
/// section), returned with the API client and the trunk's port.
async fn server_with_trunk(trunk_extra: &str) -> (ServerProcess, Api, SipUa, u16) {
    server_with(&routes(), trunk_extra).await
}

/// Like [`server_with_trunk`] with other routes.
async fn server_with(routes: &str, trunk_extra: &str) -> (ServerProcess, Api, SipUa, u16) {
    let port = free_udp_port();
    let extra = format!("{routes}[sip.trunk]\nuri = \"sip:127.0.0.1:{port}\"\n{trunk_extra}");
    let srv = server(&extra, 30);
    let api = Api::new(&srv);
    let trunk = SipUa::udp_on(port, srv.sip).await;
    (srv, api, trunk, port)
}

/// Adds a participant to MPC `room` with `body`; the status and answer.
async fn add(api: &Api, room: &str, body: Value) -> (u16, Value) {
    api.send("POST", &format!("name_{room}/Participant/"), Some(body))
        .await
}

/// The next INVITE at the trunk.
async fn next_invite(trunk: &mut SipUa, srv: &ServerProcess) -> Msg {
    trunk
        .recv_until(Duration::from_secs(5), |m| m.start.starts_with("INVITE "))
        .await
        .unwrap_or_else(|| panic!("an INVITE at the trunk\n{}", srv.log()))
}

/// Turns an INVITE down with 486 and waits for its ACK.
async fn decline(trunk: &mut SipUa, invite: &Msg) {
    trunk.answer_invite(invite, 486, "Busy Here", "").await;
    trunk
        .recv_until(Duration::from_secs(3), |m| m.start.starts_with("ACK "))
        .await
        .expect("the 486 is acknowledged");
}

/// The URI inside a name-addr header value (`"x" <sip:a@b>;tag=1` → `sip:a@b`).
fn uri_of(header: &str) -> &str {
    header
        .split_once('<')
        .and_then(|(_, rest)| rest.split_once('>'))
        .map_or(header, |(uri, _)| uri)
}

#[tokio::test]
async fn numbers_and_uris_become_proper_request_uris_on_the_trunk() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let (srv, api, mut trunk, port) = server_with_trunk("").await;
        let on_trunk = |user: &str| format!("sip:{user}@127.0.0.1:{port}");
        let cases = [
            ("15557654321", on_trunk("15557654321")),
            ("+15557654321", on_trunk("+15557654321")),
            (
                "alice@pbx.example.com",
                "sip:alice@pbx.example.com".to_string(),
            ),
            (
                "sip:bob@10.1.2.3:5080;transport=udp",
                "sip:bob@10.1.2.3:5080;transport=udp".to_string(),
            ),
        ];
        for (to, expected) in cases {
            let (status, reply) = add(
                &api,
                "uris",
                json!({"role": "customer", "from": "+14155550100", "to": to,
                       "caller_name": "Help \"Desk\" \\ West"}),
            )
            .await;
            assert_eq!(status, 201, "{to}: {reply}");
            assert_eq!(reply["calls"][0]["to"], to);
            let invite = next_invite(&mut trunk, &srv).await;
            assert_eq!(
                invite.start,
                format!("INVITE {expected} SIP/2.0"),
                "to={to}"
            );
            assert_eq!(
                invite.header("To").unwrap(),
                format!("<{expected}>"),
                "to={to}"
            );
            let from = invite.header("From").unwrap();
            assert!(
                from.starts_with("\"Help \\\"Desk\\\" \\\\ West\" <sip:+14155550100@"),
                "caller_name is the quoted display name of From: {from}"
            );
            let from_uri = uri_of(from);
            assert!(
                from_uri.starts_with("sip:+14155550100@") && from_uri.len() > 17,
                "From is a SIP URI on our address: {from}"
            );
            decline(&mut trunk, &invite).await;
        }
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn a_trunk_that_wants_digits_only_gets_no_plus() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let (srv, api, mut trunk, port) = server_with_trunk("strip_plus = true\n").await;
        let (status, reply) = add(
            &api,
            "plus",
            json!({"role": "customer", "from": "+14155550100", "to": "+15557654321"}),
        )
        .await;
        assert_eq!(status, 201, "{reply}");
        let invite = next_invite(&mut trunk, &srv).await;
        let expected = format!("sip:15557654321@127.0.0.1:{port}");
        assert_eq!(invite.start, format!("INVITE {expected} SIP/2.0"));
        assert_eq!(invite.header("To").unwrap(), format!("<{expected}>"));
        let from = invite.header("From").unwrap();
        assert!(uri_of(from).starts_with("sip:14155550100@"), "{from}");
        assert!(
            from.starts_with("\"+14155550100\" <"),
            "without caller_name the display name is from, as Plivo defaults it: {from}"
        );
        decline(&mut trunk, &invite).await;
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn destinations_and_headers_that_could_inject_sip_are_refused() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let (srv, api, mut trunk, _) = server_with_trunk("").await;
        let cases = [
            json!({"to": "1555\r\nX-Evil: 1"}),
            json!({"to": "1555\nVia: SIP/2.0/UDP evil"}),
            json!({"to": "<sip:a@b>"}),
            json!({"to": "sip:a@b>"}),
            json!({"to": "555 1234"}),
            json!({"to": "sip:a@host?Subject=hi"}),
            json!({"to": "tel:+15551234"}),
            json!({"to": "sip:@host"}),
            json!({"to": "1555", "from": "1 2"}),
            json!({"to": "1555", "from": "<x>"}),
            json!({"to": "1555", "caller_name": "x\r\nVia: y"}),
            json!({"to": "1555", "caller_name": "n".repeat(51)}),
            json!({"to": "1555", "sip_headers": "a=b\r\nVia: x"}),
            json!({"to": "1555", "sip_headers": "a b=1"}),
            json!({"to": "1555", "sip_headers": "a=<b>"}),
            json!({"to": "1555", "sip_headers": "novalue"}),
            json!({"to": "1555", "send_digits": "12\r\n3"}),
            json!({"to": "1555", "send_digits": "12x"}),
            json!({"to": "1555", "confirm_key": "12"}),
            json!({"to": "1555", "confirm_key": "x"}),
            json!({"to": "1555", "confirm_key": "1", "confirm_key_sound_url": "file:///etc/passwd"}),
            json!({"to": "1555", "dial_music": "javascript:alert(1)"}),
            json!({"to": "1555", "call_status_callback_url": "ftp://x/"}),
            json!({"to": "1555", "call_status_callback_url": "http://x/", "call_status_callback_method": "PUT"}),
            json!({"to": "1555", "callback_url": "not a url"}),
            json!({"to": "1555", "delay_dial": 500}),
            json!({"to": "1555", "delay_dial": "1<2"}),
            json!({"to": "1555", "ring_timeout": 0}),
            json!({"to": "1555", "ring_timeout": [1, 2]}),
        ];
        for case in cases {
            let mut body = json!({"role": "customer", "from": "100"});
            for (k, v) in case.as_object().unwrap() {
                body[k] = v.clone();
            }
            let (status, reply) = add(&api, "hostile", body.clone()).await;
            assert_eq!(status, 400, "{body}: {reply}");
            let error = reply["error"].as_str().unwrap_or_default();
            assert!(!error.is_empty() && reply["api_id"].is_string(), "{reply}");
        }
        assert!(
            trunk.recv(Duration::from_millis(500)).await.is_none(),
            "nothing was dialled"
        );
        assert!(srv.http_get("/health").is_some(), "still serving");
    })
    .await
    .expect("timed out");
}

/// Answers the INVITE with 200 and an SDP for `rtp`, waits for the ACK; returns where to
/// send media (our address in the offer).
async fn pick_up(trunk: &mut SipUa, invite: &Msg, rtp: &RtpPeer) -> SocketAddr {
    let sdp = SipUa::sdp(rtp.port(), &[0, 101]);
    trunk.answer_invite(invite, 200, "OK", &sdp).await;
    trunk
        .recv_until(Duration::from_secs(3), |m| m.start.starts_with("ACK "))
        .await
        .expect("the 200 is acknowledged");
    invite.sdp_audio().expect("our offer has audio")
}

/// Ends the dialled leg from the trunk's side, with a BYE to our Contact.
async fn hang_up(trunk: &mut SipUa, invite: &Msg) {
    let contact = uri_of(invite.header("Contact").expect("our Contact")).to_string();
    let text = format!(
        "BYE {contact} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{branch}\r\n\
         Max-Forwards: 70\r\nFrom: {to};tag={tag}\r\nTo: {from}\r\nCall-ID: {call_id}\r\n\
         CSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
        local = trunk.local,
        branch = uuid::Uuid::new_v4().simple(),
        tag = trunk.tag,
        to = invite.header("To").unwrap_or_default(),
        from = invite.header("From").unwrap_or_default(),
        call_id = invite.header("Call-ID").unwrap_or_default(),
    );
    trunk.send_raw(text.as_bytes()).await;
    trunk
        .recv_until(Duration::from_secs(3), |m| m.cseq_method() == "BYE")
        .await
        .expect("our BYE is answered");
}

#[tokio::test]
async fn sip_headers_become_x_headers_on_the_invite() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let (srv, api, mut trunk, _) = server_with_trunk("").await;
        let (status, reply) = add(
            &api,
            "headers",
            json!({"role": "customer", "from": "100", "to": "200",
                   "sip_headers": "Account=42,Queue=sales%20west"}),
        )
        .await;
        assert_eq!(status, 201, "{reply}");
        let invite = next_invite(&mut trunk, &srv).await;
        assert_eq!(invite.header("X-Account"), Some("42"), "{invite:?}");
        assert_eq!(invite.header("X-Queue"), Some("sales%20west"), "{invite:?}");
        decline(&mut trunk, &invite).await;
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn delay_dial_postpones_the_invite_and_ring_timeout_counts_from_it() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let (srv, api, mut trunk, _) = server_with_trunk("").await;
        let asked = Instant::now();
        let (status, reply) = add(
            &api,
            "delay",
            json!({"role": "customer", "from": "100", "to": "200",
                   "delay_dial": 3, "ring_timeout": 2}),
        )
        .await;
        assert_eq!(status, 201, "{reply}");
        assert!(
            asked.elapsed() < Duration::from_secs(2),
            "the request does not wait out the delay"
        );
        let invite = next_invite(&mut trunk, &srv).await;
        let invited = Instant::now();
        assert!(
            invited - asked >= Duration::from_millis(2500),
            "the INVITE waits for delay_dial (3 s): it came after {:?}",
            invited - asked
        );
        trunk.answer_invite(&invite, 180, "Ringing", "").await;
        let cancel = trunk
            .recv_until(Duration::from_secs(8), |m| m.start.starts_with("CANCEL "))
            .await
            .expect("a CANCEL at the ring timeout");
        let rang = invited.elapsed();
        assert!(
            rang >= Duration::from_millis(1500) && rang < Duration::from_secs(6),
            "ring_timeout (2 s) counts from the INVITE, not from the request: {rang:?}"
        );
        trunk.reply_ok(&cancel).await;
        trunk
            .answer_invite(&invite, 487, "Request Terminated", "")
            .await;
    })
    .await
    .expect("timed out");
}

/// The V3 signature of a POST callback, checked as Plivo's validators do.
fn assert_signed(r: &StubRequest, url: &str) {
    let nonce = r.header(V3_NONCE).expect("a V3 nonce");
    let expected = signature::v3_signature("change-me", HttpMethod::Post, url, &r.form, nonce);
    assert_eq!(r.header(V3), Some(expected.as_str()), "{r:?}");
}

#[tokio::test]
async fn the_dialled_leg_reports_its_status_to_call_status_callback_url() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let (srv, api, mut trunk, _) = server_with_trunk("").await;
        let stub = HttpStub::start().await;
        stub.serve("/status", 200, "text/plain", "");
        stub.serve("/busy", 200, "text/plain", "");
        let url = stub.url("/status");
        let (status, reply) = add(
            &api,
            "cbs",
            json!({"role": "customer", "from": "+14155550100", "to": "15557654321",
                   "stay_alone": true, "call_status_callback_url": url}),
        )
        .await;
        assert_eq!(status, 201, "{reply}");
        let call_uuid = reply["calls"][0]["call_uuid"].as_str().unwrap().to_string();
        let request_uuid = reply["request_uuid"].as_str().unwrap().to_string();
        let invite = next_invite(&mut trunk, &srv).await;
        trunk.answer_invite(&invite, 180, "Ringing", "").await;
        stub.wait_for("/status", 1, Duration::from_secs(5)).await;
        let rtp = RtpPeer::bind().await;
        pick_up(&mut trunk, &invite, &rtp).await;
        stub.wait_for("/status", 2, Duration::from_secs(5)).await;
        hang_up(&mut trunk, &invite).await;
        let got = stub.wait_for("/status", 3, Duration::from_secs(5)).await;
        let statuses: Vec<&str> = got
            .iter()
            .map(|r| r.param("CallStatus").unwrap_or("?"))
            .collect();
        assert_eq!(statuses, ["ringing", "in-progress", "completed"], "{got:?}");
        for r in &got {
            assert_eq!(
                r.method, "POST",
                "call_status_callback_method defaults to POST"
            );
            assert_eq!(r.param("CallUUID"), Some(call_uuid.as_str()));
            assert_eq!(r.param("RequestUUID"), Some(request_uuid.as_str()));
            assert_eq!(r.param("Direction"), Some("outbound"));
            assert_eq!(r.param("To"), Some("15557654321"));
            assert_eq!(r.param("From"), Some("+14155550100"));
            assert_signed(r, &url);
        }
        let completed = &got[2];
        assert_eq!(completed.param("HangupCause"), Some("Normal Hangup"));
        assert_eq!(completed.param("HangupCauseCode"), Some("4000"));
        assert!(completed.param("Duration").is_some() && completed.param("EndTime").is_some());

        // A busy callee: one callback, by GET this time, with the busy status.
        let (status, reply) = add(
            &api,
            "cbs",
            json!({"role": "customer", "from": "100", "to": "300",
                   "call_status_callback_url": stub.url("/busy"),
                   "call_status_callback_method": "GET"}),
        )
        .await;
        assert_eq!(status, 201, "{reply}");
        let invite = next_invite(&mut trunk, &srv).await;
        decline(&mut trunk, &invite).await;
        let got = stub.wait_for("/busy", 1, Duration::from_secs(5)).await;
        assert_eq!(got[0].method, "GET");
        assert_eq!(got[0].param("CallStatus"), Some("busy"), "{got:?}");
        assert_eq!(got[0].param("HangupCauseCode"), Some("3010"));
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn send_digits_reach_the_callee_as_rfc4733_events_after_the_answer() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let (srv, api, mut trunk, _) = server_with_trunk("").await;
        let (status, reply) = add(
            &api,
            "digits",
            json!({"role": "customer", "from": "100", "to": "200", "stay_alone": true,
                   "send_digits": "12w#"}),
        )
        .await;
        assert_eq!(status, 201, "{reply}");
        let invite = next_invite(&mut trunk, &srv).await;
        let mut rtp = RtpPeer::bind().await;
        let media = pick_up(&mut trunk, &invite, &rtp).await;
        rtp.talk(media, 440.0, Duration::from_millis(2500)).await;
        assert_eq!(rtp.dtmf_received, vec![1, 2, 11], "digits 1, 2, # in order");
    })
    .await
    .expect("timed out");
}

/// Sends a 183 with an SDP for `rtp` (early media) to the INVITE.
async fn early_media(trunk: &mut SipUa, invite: &Msg, rtp: &RtpPeer) -> SocketAddr {
    let sdp = SipUa::sdp(rtp.port(), &[0, 101]);
    trunk
        .answer_invite(invite, 183, "Session Progress", &sdp)
        .await;
    invite.sdp_audio().expect("our offer has audio")
}

#[tokio::test]
async fn send_on_preanswer_sends_the_digits_on_early_media_before_the_answer() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let (srv, api, mut trunk, _) = server_with_trunk("").await;
        let (status, reply) = add(
            &api,
            "early",
            json!({"role": "customer", "from": "100", "to": "200", "stay_alone": true,
                   "send_digits": "12w#", "send_on_preanswer": true}),
        )
        .await;
        assert_eq!(status, 201, "{reply}");
        let invite = next_invite(&mut trunk, &srv).await;
        let mut rtp = RtpPeer::bind().await;
        let media = early_media(&mut trunk, &invite, &rtp).await;
        // Still ringing: nothing answered, yet the digits arrive.
        rtp.talk(media, 440.0, Duration::from_millis(2500)).await;
        assert_eq!(
            rtp.dtmf_received,
            vec![1, 2, 11],
            "digits 1, 2, # on early media\n{}",
            srv.log()
        );
        pick_up(&mut trunk, &invite, &rtp).await;
        rtp.talk(media, 440.0, Duration::from_millis(2000)).await;
        assert_eq!(
            rtp.dtmf_received,
            vec![1, 2, 11],
            "the answer does not send them again"
        );
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn without_send_on_preanswer_early_media_gets_no_digits_until_the_answer() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let (srv, api, mut trunk, _) = server_with_trunk("").await;
        let (status, reply) = add(
            &api,
            "late",
            json!({"role": "customer", "from": "100", "to": "200", "stay_alone": true,
                   "send_digits": "12w#", "send_on_preanswer": false}),
        )
        .await;
        assert_eq!(status, 201, "{reply}");
        let invite = next_invite(&mut trunk, &srv).await;
        let mut rtp = RtpPeer::bind().await;
        let media = early_media(&mut trunk, &invite, &rtp).await;
        rtp.talk(media, 440.0, Duration::from_millis(2000)).await;
        assert!(rtp.dtmf_received.is_empty(), "{:?}", rtp.dtmf_received);
        pick_up(&mut trunk, &invite, &rtp).await;
        rtp.talk(media, 440.0, Duration::from_millis(2500)).await;
        assert_eq!(
            rtp.dtmf_received,
            vec![1, 2, 11],
            "digits after the answer\n{}",
            srv.log()
        );
    })
    .await
    .expect("timed out");
}

/// A server with a trunk, an agent talking in MPC `room`, and a stub serving the confirm
/// prompt (a `PROMPT` tone) at `/confirm.xml`.
async fn confirm_setup() -> (ServerProcess, Api, SipUa, HttpStub) {
    let (srv, api, trunk, _) = server_with_trunk("").await;
    let stub = HttpStub::start().await;
    stub.serve("/prompt.wav", 200, "audio/wav", wav_tone(PROMPT, 1.0, 8000));
    stub.serve_xml(
        "/confirm.xml",
        &format!(
            "<Response><Play>{}</Play></Response>",
            stub.url("/prompt.wav")
        ),
    );
    (srv, api, trunk, stub)
}

/// Dials a customer into `room` with confirm key 5; answers; returns the callee's RTP, where
/// to send media, the INVITE and the call uuid.
async fn dial_confirmed(
    srv: &ServerProcess,
    api: &Api,
    trunk: &mut SipUa,
    stub: &HttpStub,
    room: &str,
) -> (RtpPeer, SocketAddr, Msg, String) {
    let (status, reply) = add(
        api,
        room,
        json!({"role": "customer", "from": "100", "to": "200", "enter_sound": "none",
               "confirm_key": "5", "confirm_key_sound_url": stub.url("/confirm.xml")}),
    )
    .await;
    assert_eq!(status, 201, "{reply}");
    let call_uuid = reply["calls"][0]["call_uuid"].as_str().unwrap().to_string();
    let invite = next_invite(trunk, srv).await;
    let rtp = RtpPeer::bind().await;
    let media = pick_up(trunk, &invite, &rtp).await;
    (rtp, media, invite, call_uuid)
}

async fn members(api: &Api, room: &str, call_uuid: &str) -> u64 {
    let (_, list) = api
        .get(&format!("name_{room}/Participant/?call_uuid={call_uuid}"))
        .await;
    list["meta"]["count"].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn a_confirm_key_callee_hears_the_prompt_and_joins_only_after_the_key() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let (srv, api, mut trunk, stub) = confirm_setup().await;
        let (mut agent_ua, mut agent, agent_media) = answered(srv.sip, "agent-ck").await;
        let (mut rtp, media, _invite, call_uuid) =
            dial_confirmed(&srv, &api, &mut trunk, &stub, "ck").await;
        // Before the key: the prompt, not the room; not a member.
        let (heard, _) = tokio::join!(
            rtp.talk(media, 440.0, Duration::from_millis(1500)),
            agent.talk(agent_media, AGENT, Duration::from_millis(1500))
        );
        let tail = &heard[heard.len() / 3..];
        assert!(
            tone_share(tail, PROMPT) > 0.2,
            "the callee hears the confirm prompt"
        );
        assert!(
            tone_share(tail, AGENT) < 0.02,
            "and not the room before confirming"
        );
        assert_eq!(members(&api, "ck", &call_uuid).await, 0, "not joined yet");
        assert!(
            stub.requests_to("/confirm.xml").len() == 1,
            "the prompt was fetched"
        );
        // The key: the callee joins and hears the agent.
        rtp.send_dtmf(media, 5).await;
        api.wait_json(
            &format!("name_ck/Participant/?call_uuid={call_uuid}"),
            Duration::from_secs(5),
            |v| v["meta"]["count"] == 1,
        )
        .await;
        let (heard, _) = tokio::join!(
            rtp.talk(media, 440.0, Duration::from_millis(1200)),
            agent.talk(agent_media, AGENT, Duration::from_millis(1200))
        );
        assert!(
            tone_share(&heard[heard.len() / 2..], AGENT) > 0.05,
            "once confirmed the callee hears the room"
        );
        agent_ua.bye().await;
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn a_wrong_or_missing_confirm_key_hangs_the_callee_up_without_joining() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let (srv, api, mut trunk, stub) = confirm_setup().await;
        let _agent = answered(srv.sip, "agent-wk").await;
        // A wrong key.
        let (mut rtp, media, _, call_uuid) =
            dial_confirmed(&srv, &api, &mut trunk, &stub, "wk").await;
        rtp.talk(media, 440.0, Duration::from_millis(300)).await;
        rtp.send_dtmf(media, 3).await;
        let bye = trunk
            .recv_until(Duration::from_secs(5), |m| m.start.starts_with("BYE "))
            .await
            .expect("a wrong key hangs up");
        trunk.reply_ok(&bye).await;
        assert_eq!(members(&api, "wk", &call_uuid).await, 0, "never joined");
        // No key at all: hung up at the confirm timeout (10 s).
        let (_rtp, _, _, call_uuid) = dial_confirmed(&srv, &api, &mut trunk, &stub, "wk").await;
        let answered_at = Instant::now();
        let bye = trunk
            .recv_until(Duration::from_secs(20), |m| m.start.starts_with("BYE "))
            .await
            .expect("no key hangs up at the timeout");
        trunk.reply_ok(&bye).await;
        let waited = answered_at.elapsed();
        assert!(
            waited >= Duration::from_secs(8),
            "the callee had its time to press the key: {waited:?}"
        );
        assert_eq!(members(&api, "wk", &call_uuid).await, 0, "never joined");
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn the_asynchronous_form_answers_at_once_and_reports_to_callback_url() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let (srv, api, mut trunk, _) = server_with_trunk("").await;
        let stub = HttpStub::start().await;
        stub.serve("/done", 200, "text/plain", "");
        stub.serve("/failed", 200, "text/plain", "");
        let url = stub.url("/done");
        let (status, reply) = add(
            &api,
            "async",
            json!({"role": "customer", "from": "100", "to": "200", "callback_url": url}),
        )
        .await;
        assert_eq!(status, 201, "{reply}");
        assert_eq!(reply["message"], "async api spawned", "{reply}");
        assert!(
            reply.get("calls").is_none(),
            "the outcome comes later: {reply}"
        );
        let api_id = reply["api_id"].as_str().unwrap().to_string();
        let got = stub.wait_for("/done", 1, Duration::from_secs(5)).await;
        let outcome = &got[0];
        assert_eq!(outcome.method, "POST", "callback_method defaults to POST");
        assert_signed(outcome, &url);
        assert_eq!(outcome.param("api_id"), Some(api_id.as_str()));
        assert_eq!(
            outcome.param("message"),
            Some("add participant action initiated")
        );
        assert!(outcome.param("request_uuid").is_some_and(|u| u.len() == 36));
        let calls: Value = serde_json::from_str(outcome.param("calls").unwrap()).unwrap();
        let call_uuid = calls[0]["call_uuid"].as_str().unwrap();
        assert_eq!(call_uuid.len(), 36, "{calls}");
        let invite = next_invite(&mut trunk, &srv).await;
        decline(&mut trunk, &invite).await;

        // A request that fails later reports its error there.
        let (status, reply) = add(
            &api,
            "async",
            json!({"role": "customer", "call_uuid": "no-such-call",
                   "callback_url": stub.url("/failed"), "callback_method": "GET"}),
        )
        .await;
        assert_eq!(status, 201, "{reply}");
        let got = stub.wait_for("/failed", 1, Duration::from_secs(5)).await;
        assert_eq!(got[0].method, "GET");
        assert_eq!(got[0].param("status_code"), Some("404"), "{:?}", got[0]);
        assert!(got[0]
            .param("error")
            .is_some_and(|e| e.contains("no-such-call")));
        // A malformed one is still refused at once.
        let (status, _) = add(
            &api,
            "async",
            json!({"role": "customer", "from": "1", "to": "a b", "callback_url": url}),
        )
        .await;
        assert_eq!(status, 400);
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn add_participant_api_events_go_to_the_mpcs_status_callback() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let stub = HttpStub::start().await;
        stub.serve("/events", 200, "text/plain", "");
        let routes = format!(
            "[[route]]\nuser = \"^agent-(?P<mpc>[a-z0-9]+)$\"\n\
             xml = '<Response><MultiPartyCall role=\"agent\" enterSound=\"none\" exitSound=\"none\" stayAlone=\"true\" \
             statusCallbackUrl=\"{}\" statusCallbackEvents=\"add-participant-api-events\">$mpc</MultiPartyCall></Response>'\n",
            stub.url("/events")
        );
        let (srv, api, mut trunk, _) = server_with(&routes, "").await;
        let _agent = answered(srv.sip, "agent-apiev").await;
        let (_, mpc) = api.get("name_apiev/").await;
        let mpc_uuid = mpc["mpc_uuid"].as_str().unwrap().to_string();

        // Answered: Initiated, then Completed naming the call that joins.
        let (status, reply) = add(
            &api,
            "apiev",
            json!({"role": "customer", "from": "+14155550100", "to": "15557654321"}),
        )
        .await;
        assert_eq!(status, 201, "{reply}");
        let request_uuid = reply["request_uuid"].as_str().unwrap().to_string();
        let call_uuid = reply["calls"][0]["call_uuid"].as_str().unwrap().to_string();
        let invite = next_invite(&mut trunk, &srv).await;
        let rtp = RtpPeer::bind().await;
        pick_up(&mut trunk, &invite, &rtp).await;
        let got = stub.wait_for("/events", 2, Duration::from_secs(10)).await;
        let names: Vec<&str> = got.iter().map(|r| r.param("EventName").unwrap_or("?")).collect();
        assert_eq!(
            names,
            ["AddParticipantByAPIActionInitiated", "AddParticipantByAPIActionCompleted"],
            "{got:?}"
        );
        for r in &got {
            assert_eq!(r.param("MPCUUID"), Some(mpc_uuid.as_str()));
            assert_eq!(r.param("MPCName"), Some("apiev"));
            assert_eq!(r.param("RequestUUID"), Some(request_uuid.as_str()));
            assert_eq!(r.param("ParticipantCallTo"), Some("15557654321"));
            assert_eq!(r.param("ParticipantCallFrom"), Some("+14155550100"));
        }
        assert_eq!(got[1].param("ParticipantCallUUID"), Some(call_uuid.as_str()));
        assert_eq!(got[1].param("CallStatus"), Some("in-progress"));

        // Nobody answers: Completed says so.
        let (status, reply) = add(
            &api,
            "apiev",
            json!({"role": "customer", "from": "100", "to": "300"}),
        )
        .await;
        assert_eq!(status, 201, "{reply}");
        let invite = next_invite(&mut trunk, &srv).await;
        decline(&mut trunk, &invite).await;
        let got = stub.wait_for("/events", 4, Duration::from_secs(10)).await;
        assert_eq!(
            got[3].param("EventName"),
            Some("AddParticipantByAPIActionCompleted")
        );
        assert_eq!(got[3].param("CallStatus"), Some("busy"), "{:?}", got[3]);
        assert!(got[3].param("ParticipantCallUUID").is_none());
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn dial_music_is_what_the_mpc_hears_while_the_callee_rings() {
    tokio::time::timeout(Duration::from_secs(90), async {
        const MUSIC: f64 = 600.0;
        let (srv, api, mut trunk, _) = server_with_trunk("").await;
        let stub = HttpStub::start().await;
        stub.serve("/music.wav", 200, "audio/wav", wav_tone(MUSIC, 1.0, 8000));
        stub.serve_xml(
            "/music.xml",
            &format!(
                "<Response><Play>{}</Play></Response>",
                stub.url("/music.wav")
            ),
        );
        let (mut agent_ua, mut agent, agent_media) = answered(srv.sip, "agent-dm").await;
        let listen = |heard: Vec<i16>| heard[heard.len() / 3..].to_vec();

        // A URL: its document plays to the MPC while ringing, and stops at the answer.
        let (status, reply) = add(
            &api,
            "dm",
            json!({"role": "customer", "from": "100", "to": "200", "enter_sound": "none",
                   "dial_music": stub.url("/music.xml")}),
        )
        .await;
        assert_eq!(status, 201, "{reply}");
        let invite = next_invite(&mut trunk, &srv).await;
        trunk.answer_invite(&invite, 180, "Ringing", "").await;
        let heard = listen(
            agent
                .talk(agent_media, AGENT, Duration::from_millis(1800))
                .await,
        );
        assert!(
            tone_share(&heard, MUSIC) > 0.2,
            "the MPC hears the dial music"
        );
        let rtp = RtpPeer::bind().await;
        pick_up(&mut trunk, &invite, &rtp).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let heard = listen(
            agent
                .talk(agent_media, AGENT, Duration::from_millis(1500))
                .await,
        );
        assert!(
            tone_share(&heard, MUSIC) < 0.02,
            "the music stops at the answer"
        );
        hang_up(&mut trunk, &invite).await;

        // real (the default): a ringback tone, stopped when the callee turns the call down.
        let music_started = Instant::now();
        let (status, reply) = add(
            &api,
            "dm",
            json!({"role": "customer", "from": "100", "to": "300"}),
        )
        .await;
        assert_eq!(status, 201, "{reply}");
        let invite = next_invite(&mut trunk, &srv).await;
        trunk.answer_invite(&invite, 180, "Ringing", "").await;
        // Within the first 2 s "on" part of the cadence.
        let heard = agent
            .talk(agent_media, AGENT, Duration::from_millis(1500))
            .await;
        assert!(
            tone_share(&heard, 440.0) > 0.05 && tone_share(&heard, 480.0) > 0.05,
            "real: the MPC hears ringback (440 + 480 Hz)"
        );
        decline(&mut trunk, &invite).await;
        // The next "on" part would start 6 s after the music: listen there.
        let next_ring = music_started + Duration::from_millis(6300);
        tokio::time::sleep_until(next_ring.into()).await;
        let heard = agent
            .talk(agent_media, AGENT, Duration::from_millis(1500))
            .await;
        assert!(
            tone_share(&heard, 440.0) < 0.02,
            "the ringback stops with the dial"
        );

        // none: nothing.
        let (status, reply) = add(
            &api,
            "dm",
            json!({"role": "customer", "from": "100", "to": "400", "dial_music": "none"}),
        )
        .await;
        assert_eq!(status, 201, "{reply}");
        let invite = next_invite(&mut trunk, &srv).await;
        trunk.answer_invite(&invite, 180, "Ringing", "").await;
        let heard = listen(
            agent
                .talk(agent_media, AGENT, Duration::from_millis(1500))
                .await,
        );
        assert!(
            tone_share(&heard, 440.0) < 0.02 && tone_share(&heard, MUSIC) < 0.02,
            "none: silence while ringing"
        );
        decline(&mut trunk, &invite).await;
        agent_ua.bye().await;
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn api_events_of_a_request_that_creates_its_mpc_use_the_requests_callback() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let (srv, api, mut trunk, _) = server_with_trunk("").await;
        let stub = HttpStub::start().await;
        stub.serve("/events", 200, "text/plain", "");
        let (status, reply) = add(
            &api,
            "fresh",
            json!({"role": "customer", "from": "100", "to": "200", "stay_alone": true,
                   "status_callback_url": stub.url("/events"),
                   "status_callback_events": "add-participant-api-events"}),
        )
        .await;
        assert_eq!(status, 201, "{reply}");
        let request_uuid = reply["request_uuid"].as_str().unwrap().to_string();
        let invite = next_invite(&mut trunk, &srv).await;
        let rtp = RtpPeer::bind().await;
        pick_up(&mut trunk, &invite, &rtp).await;
        let got = stub.wait_for("/events", 2, Duration::from_secs(10)).await;
        let (_, mpc) = api.get("name_fresh/").await;
        let initiated = &got[0];
        assert_eq!(
            initiated.param("EventName"),
            Some("AddParticipantByAPIActionInitiated")
        );
        assert_eq!(
            initiated.method, "GET",
            "the REST default status_callback_method"
        );
        assert_eq!(initiated.param("MPCName"), Some("fresh"));
        assert_eq!(initiated.param("RequestUUID"), Some(request_uuid.as_str()));
        assert!(
            initiated.param("MPCUUID").is_none(),
            "no MPC existed yet: {initiated:?}"
        );
        let completed = &got[1];
        assert_eq!(
            completed.param("EventName"),
            Some("AddParticipantByAPIActionCompleted")
        );
        assert_eq!(
            completed.param("MPCUUID"),
            mpc["mpc_uuid"].as_str(),
            "by then the MPC exists and reports it"
        );
        assert_eq!(completed.param("CallStatus"), Some("in-progress"));
    })
    .await
    .expect("timed out");
}
