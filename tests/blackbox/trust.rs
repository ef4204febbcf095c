//! Source access control over real sockets: who may call in (`sip.trusted`, `sip.untrusted`,
//! a route's `from_networks`), what a refused source gets (403 or nothing at all), that nothing
//! is fetched or allocated for it, and that the dialogs of calls we placed still work with an
//! untrusted trunk. A second loopback address (127.0.0.2) plays the foreign source: on Linux
//! the whole of 127.0.0.0/8 reaches the loopback interface.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use huddle_testkit::{HttpStub, Msg, RtpPeer, ServerProcess, SipUa};
use serde_json::json;

use super::answered;

const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
const FOREIGN: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const ACCOUNT: &str = "MAHUDDLEDEFAULT00000";

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_huddle"))
}

/// A server on the standard test configuration with more `[sip]` keys and routes.
fn server_with(sip_extra: &str, routes: &str, rtp_ports: u16) -> ServerProcess {
    ServerProcess::start_with(bin(), rtp_ports, |slots| {
        slots.standard(sip_extra, "", routes)
    })
}

/// Sends an INVITE for `user` from `ua` and returns the first message back within `wait`.
async fn first_reply(ua: &mut SipUa, user: &str, wait: Duration) -> Option<Msg> {
    let text = ua.invite_text(user, &SipUa::sdp(4000, &[0]));
    ua.send_raw(text.as_bytes()).await;
    ua.recv(wait).await
}

/// Sends an OPTIONS from `ua` and returns the first message back within `wait`.
async fn options_reply(ua: &mut SipUa, wait: Duration) -> Option<Msg> {
    let text = format!(
        "OPTIONS sip:huddle@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{b}\r\nMax-Forwards: 70\r\n\
From: <sip:probe@{local}>;tag=p1\r\nTo: <sip:huddle@127.0.0.1>\r\nCall-ID: {b}@probe\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        local = ua.local,
        b = uuid::Uuid::new_v4().simple()
    );
    ua.send_raw(text.as_bytes()).await;
    ua.recv(wait).await
}

/// An echo call from `ip` that must be answered; hung up again.
async fn call_answered_from(srv: &ServerProcess, ip: IpAddr, user: &str) {
    let mut ua = SipUa::udp_from(ip, srv.sip).await;
    let rtp = RtpPeer::bind().await;
    let ok = ua
        .invite(user, &SipUa::sdp(rtp.port(), &[0]))
        .await
        .unwrap_or_else(|| panic!("{user} from {ip}: no final response"));
    assert_eq!(ok.status(), 200, "{user} from {ip}: {ok:?}");
    ua.ack().await;
    let bye = ua.bye().await.expect("BYE answered");
    assert_eq!(bye.status(), 200);
}

/// The first answer to an INVITE from `ip` must be a 403 (no 100 Trying before it).
async fn call_refused_from(srv: &ServerProcess, ip: IpAddr, user: &str) {
    let mut ua = SipUa::udp_from(ip, srv.sip).await;
    let reply = first_reply(&mut ua, user, Duration::from_secs(3))
        .await
        .unwrap_or_else(|| panic!("{user} from {ip}: no answer"));
    assert_eq!(reply.status(), 403, "{user} from {ip}: {}", reply.start);
    assert_eq!(reply.cseq_method(), "INVITE");
    assert!(reply.header("To").unwrap().contains(";tag="), "{reply:?}");
    // And it stays refused: nothing else follows.
    assert!(ua.recv(Duration::from_millis(300)).await.is_none());
}

fn refused(srv: &ServerProcess, reason: &str) -> f64 {
    srv.metric(&format!("huddle_sip_refused_total{{reason=\"{reason}\"}}"))
}

#[tokio::test]
async fn an_untrusted_source_gets_403_and_a_trusted_one_is_answered() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let srv = server_with(
            "trusted = [\"127.0.0.1/32\"]\nuntrusted = \"reject\"",
            "",
            10,
        );
        call_refused_from(&srv, FOREIGN, "echo").await;
        let mut probe = SipUa::udp_from(FOREIGN, srv.sip).await;
        let reply = options_reply(&mut probe, Duration::from_secs(3))
            .await
            .expect("OPTIONS from an untrusted source is answered in reject mode");
        assert_eq!(reply.status(), 403, "{}", reply.start);
        call_answered_from(&srv, LOCAL, "echo").await;
        let mut local = SipUa::udp_from(LOCAL, srv.sip).await;
        let reply = options_reply(&mut local, Duration::from_secs(3))
            .await
            .expect("OPTIONS answered");
        assert_eq!(reply.status(), 200);
        assert_eq!(refused(&srv, "untrusted_source"), 2.0);
        assert_eq!(refused(&srv, "route_network"), 0.0);
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn drop_sends_an_untrusted_source_nothing_at_all() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let srv = server_with("trusted = [\"127.0.0.1/32\"]\nuntrusted = \"drop\"", "", 10);
        let mut ua = SipUa::udp_from(FOREIGN, srv.sip).await;
        let reply = first_reply(&mut ua, "echo", Duration::from_secs(2)).await;
        assert!(reply.is_none(), "an answer to a dropped INVITE: {reply:?}");
        let reply = options_reply(&mut ua, Duration::from_secs(2)).await;
        assert!(reply.is_none(), "an answer to a dropped OPTIONS: {reply:?}");
        // In-dialog junk for a dialog that does not exist gets nothing either (no 481).
        let bye = "BYE sip:huddle@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:9;branch=z9hG4bKjunk\r\n\
From: <sip:a@127.0.0.2>;tag=a\r\nTo: <sip:b@127.0.0.1>;tag=b\r\nCall-ID: no-such-call\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n";
        ua.send_raw(bye.as_bytes()).await;
        assert!(ua.recv(Duration::from_secs(1)).await.is_none());
        call_answered_from(&srv, LOCAL, "echo").await;
        assert_eq!(refused(&srv, "untrusted_source"), 3.0);
    })
    .await
    .expect("timed out");
}

/// The shipped configuration, made runnable beside other tests: its own ports and data
/// directory, every other line as shipped (`sip.trusted` in particular).
fn shipped_config(slots: &huddle_testkit::Slots) -> String {
    let mut text = include_str!("../../config/huddle.toml").to_string();
    let dir = slots.dir.display();
    for (from, to) in [
        (
            "listen = [\"udp:0.0.0.0:5060\", \"tcp:0.0.0.0:5060\"]".to_string(),
            format!(
                "listen = [\"udp:127.0.0.1:{p}\", \"tcp:127.0.0.1:{p}\"]",
                p = slots.sip_port
            ),
        ),
        (
            "port_range = \"20000-30000\"".to_string(),
            format!("port_range = \"{}-{}\"", slots.rtp_low, slots.rtp_high),
        ),
        (
            "listen = \"127.0.0.1:8088\"".to_string(),
            format!("listen = \"127.0.0.1:{}\"", slots.http_port),
        ),
        (
            "public_url = \"http://127.0.0.1:8088\"".to_string(),
            format!("public_url = \"http://127.0.0.1:{}\"", slots.http_port),
        ),
        (
            "database = \"sqlite://data/huddle.db\"".to_string(),
            format!("database = \"sqlite://{dir}/huddle.db\""),
        ),
        (
            "recordings = \"data/recordings\"".to_string(),
            format!("recordings = \"{dir}/recordings\""),
        ),
    ] {
        assert!(text.contains(&from), "the shipped configuration has {from}");
        text = text.replacen(&from, &to, 1);
    }
    text
}

#[tokio::test]
async fn the_default_configuration_answers_this_host_and_refuses_another_address() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let srv = ServerProcess::start_with(bin(), 10, shipped_config);
        call_answered_from(&srv, LOCAL, "echo").await;
        call_refused_from(&srv, FOREIGN, "echo").await;
        assert_eq!(refused(&srv, "untrusted_source"), 1.0);
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn a_route_takes_calls_only_from_its_networks() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let srv = server_with(
            "trusted = [\"127.0.0.0/8\"]",
            "[[route]]\nuser = \"^vip$\"\necho = true\nfrom_networks = [\"127.0.0.2/32\"]\n",
            10,
        );
        call_refused_from(&srv, LOCAL, "vip").await;
        call_answered_from(&srv, FOREIGN, "vip").await;
        call_answered_from(&srv, LOCAL, "echo").await;
        call_answered_from(&srv, FOREIGN, "echo").await;
        assert_eq!(refused(&srv, "route_network"), 1.0);
        assert_eq!(refused(&srv, "untrusted_source"), 0.0);
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn nothing_is_fetched_or_allocated_for_refused_invites() {
    tokio::time::timeout(Duration::from_secs(30), async {
        let stub = HttpStub::start().await;
        stub.serve_xml("/answer", "<Response><Wait length=\"5\"/></Response>");
        let routes = format!(
            "[[route]]\nuser = \"^app$\"\nanswer_url = \"{}\"\n\
             [[route]]\nuser = \"^app-lan$\"\nanswer_url = \"{}\"\nfrom_networks = [\"10.0.0.0/8\"]\n",
            stub.url("/answer"),
            stub.url("/answer")
        );
        // Exactly one RTP port pair: a refused INVITE holding one would starve the call after.
        let srv = server_with("trusted = [\"127.0.0.1/32\"]", &routes, 2);
        for _ in 0..3 {
            call_refused_from(&srv, FOREIGN, "app").await;
            call_refused_from(&srv, LOCAL, "app-lan").await;
        }
        assert_eq!(stub.requests().len(), 0, "no answer_url request");
        assert_eq!(
            srv.metric("huddle_calls_total"),
            0.0,
            "no call was created for a refused INVITE"
        );
        assert_eq!(refused(&srv, "untrusted_source"), 3.0);
        assert_eq!(refused(&srv, "route_network"), 3.0);
        call_answered_from(&srv, LOCAL, "echo").await;
        assert_eq!(srv.metric("huddle_calls_total"), 1.0);
    })
    .await
    .expect("timed out");
}

#[tokio::test]
async fn an_untrusted_trunk_still_answers_and_ends_the_calls_we_place() {
    tokio::time::timeout(Duration::from_secs(60), async {
        let port = std::net::UdpSocket::bind((FOREIGN, 0))
            .and_then(|s| s.local_addr())
            .expect("a free port on 127.0.0.2")
            .port();
        let routes = format!(
            "[[route]]\nuser = \"^(?P<role>agent|customer)-(?P<mpc>[a-z0-9]+)$\"\n\
             xml = '<Response><MultiPartyCall role=\"$role\" enterSound=\"none\" exitSound=\"none\" stayAlone=\"true\">$mpc</MultiPartyCall></Response>'\n\
             [sip.trunk]\nuri = \"sip:127.0.0.2:{port}\"\n"
        );
        // The shipped default: the trunk at 127.0.0.2 is not trusted.
        let srv = server_with("", &routes, 30);
        let mut trunk = SipUa::udp_at(SocketAddr::new(FOREIGN, port), srv.sip).await;
        let (_agent, _agent_rtp, _) = answered(srv.sip, "agent-out").await;
        let (status, reply) = {
            let response = reqwest::Client::new()
                .post(format!(
                    "http://{}/v1/Account/{ACCOUNT}/MultiPartyCall/name_out/Participant/",
                    srv.http
                ))
                .basic_auth(ACCOUNT, Some("change-me"))
                .json(&json!({"role": "customer", "from": "100", "to": "sip:200@127.0.0.2"}))
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.text().await.unwrap())
        };
        assert_eq!(status, 201, "{reply}");
        let invite = trunk
            .recv_until(Duration::from_secs(5), |m| m.start.starts_with("INVITE "))
            .await
            .expect("an INVITE at the trunk");
        let rtp = RtpPeer::bind().await;
        // Its responses complete our transaction...
        trunk
            .answer_invite(&invite, 200, "OK", &SipUa::sdp(rtp.port(), &[0]))
            .await;
        trunk
            .recv_until(Duration::from_secs(3), |m| m.start.starts_with("ACK "))
            .await
            .expect("the 200 is acknowledged");
        // ...and its BYE in the dialog is served, although it is not trusted.
        let contact = invite
            .header("Contact")
            .and_then(|c| c.split('<').nth(1))
            .and_then(|c| c.split('>').next())
            .expect("our Contact")
            .to_string();
        let bye = format!(
            "BYE {contact} SIP/2.0\r\nVia: SIP/2.0/UDP {local};branch=z9hG4bK{b}\r\nMax-Forwards: 70\r\n\
From: <sip:200@{local}>;tag={tag}\r\nTo: {from}\r\nCall-ID: {cid}\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
            local = trunk.local,
            b = uuid::Uuid::new_v4().simple(),
            tag = trunk.tag,
            from = invite.header("From").unwrap(),
            cid = invite.header("Call-ID").unwrap(),
        );
        trunk.send_raw(bye.as_bytes()).await;
        let ok = trunk
            .recv_until(Duration::from_secs(3), |m| m.cseq_method() == "BYE")
            .await
            .expect("the BYE is answered");
        assert_eq!(ok.status(), 200, "{}\n{bye}\n{}", ok.start, srv.log());
        // A new call from the same untrusted address is still refused.
        let text = trunk.invite_text("echo", &SipUa::sdp(4000, &[0]));
        trunk.send_raw(text.as_bytes()).await;
        let reply = trunk
            .recv_until(Duration::from_secs(3), |m| {
                m.cseq_method() == "INVITE" && m.status() >= 100
            })
            .await
            .expect("an answer");
        assert_eq!(reply.status(), 403);
    })
    .await
    .expect("timed out");
}
