//! Plivo's own Python SDK (the `plivo` package, pinned in tests/plivo_sdk/requirements.txt)
//! against a live huddle: tests/plivo_sdk/mpc_sdk.py lists and gets MPCs, adds participants
//! by call uuid and by dialling a bare number, mutes, holds, records, plays and kicks, and
//! fails on any answer the SDK does not take; the trunk here checks the dial-out's INVITE.
//!
//! The virtual environment comes from tests/plivo_sdk/setup.sh (`HUDDLE_PLIVO_VENV` names
//! another one). Without it the test is skipped with a message, unless
//! `HUDDLE_REQUIRE_PLIVO_SDK` is set (as .ci/run does), when its absence is a failure.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use huddle_testkit::{wav_tone, HttpStub, RtpPeer, SipUa};

use super::{answered, server, ACCOUNT};

fn venv_python() -> PathBuf {
    let venv = std::env::var_os("HUDDLE_PLIVO_VENV").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/plivo_sdk/.venv"),
        PathBuf::from,
    );
    venv.join("bin/python")
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .expect("a free port")
        .port()
}

#[tokio::test]
async fn plivos_python_sdk_drives_huddle() {
    let python = venv_python();
    if !python.exists() {
        assert!(
            std::env::var_os("HUDDLE_REQUIRE_PLIVO_SDK").is_none(),
            "HUDDLE_REQUIRE_PLIVO_SDK is set but there is no Plivo SDK environment at {}: run tests/plivo_sdk/setup.sh",
            python.display()
        );
        eprintln!(
            "SKIPPED plivos_python_sdk_drives_huddle: no Plivo SDK environment at {} (run tests/plivo_sdk/setup.sh)",
            python.display()
        );
        return;
    }
    tokio::time::timeout(Duration::from_secs(120), async {
        let trunk_port = free_udp_port();
        let routes = "[[route]]\nuser = \"^(?P<role>agent|customer)-(?P<mpc>[a-z0-9]+)$\"\n\
             xml = '<Response><MultiPartyCall role=\"$role\" enterSound=\"none\" exitSound=\"none\" stayAlone=\"true\">$mpc</MultiPartyCall></Response>'\n";
        let srv = server(
            &format!("{routes}[sip.trunk]\nuri = \"sip:127.0.0.1:{trunk_port}\"\n"),
            40,
        );
        let mut trunk = SipUa::udp_on(trunk_port, srv.sip).await;
        let stub = HttpStub::start().await;
        stub.serve("/tone.wav", 200, "audio/wav", wav_tone(900.0, 1.0, 8000));
        let _agent = answered(srv.sip, "agent-sdk").await;
        let _customer = answered(srv.sip, "customer-lobby").await;

        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/plivo_sdk/mpc_sdk.py");
        let sdk = tokio::process::Command::new(&python)
            .arg(&script)
            .arg(format!("http://{}", srv.http))
            .arg(ACCOUNT)
            .arg("change-me")
            .arg(stub.url("/tone.wav"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the SDK script starts");

        // The dial-out the script asks for: a bare number on the trunk's host.
        let invite = trunk
            .recv_until(Duration::from_secs(60), |m| m.start.starts_with("INVITE "))
            .await
            .unwrap_or_else(|| panic!("an INVITE at the trunk\n{}", srv.log()));
        let expected = format!("sip:15557654321@127.0.0.1:{trunk_port}");
        assert_eq!(invite.start, format!("INVITE {expected} SIP/2.0"));
        assert_eq!(invite.header("To"), Some(format!("<{expected}>").as_str()));
        let from = invite.header("From").unwrap_or_default();
        assert!(from.starts_with("\"Sales Desk\" <sip:+14155550100@"), "{from}");
        assert_eq!(invite.header("X-Queue"), Some("7"), "sip_headers");
        let callee = RtpPeer::bind().await;
        let sdp = SipUa::sdp(callee.port(), &[0, 101]);
        trunk.answer_invite(&invite, 200, "OK", &sdp).await;
        // Serve the leg (the ACK, then the kick's BYE) while the script runs.
        let serve_trunk = tokio::spawn(async move {
            while let Some(m) = trunk.recv(Duration::from_secs(60)).await {
                if m.start.starts_with("BYE ") {
                    trunk.reply_ok(&m).await;
                    return true;
                }
            }
            false
        });
        let output = sdk.wait_with_output().await.expect("the SDK script runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "the SDK script failed ({}):\n{stdout}\n{stderr}\n--- server log ---\n{}",
            output.status,
            srv.log()
        );
        assert!(stdout.contains("all SDK checks passed"), "{stdout}");
        assert!(
            serve_trunk.await.unwrap(),
            "the kicked dialled leg got a BYE"
        );
    })
    .await
    .expect("timed out");
}
