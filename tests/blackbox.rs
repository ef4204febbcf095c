//! Black-box tests: each starts `huddle serve` and talks SIP, RTP and HTTP to it over sockets.

mod blackbox {
    pub mod ai_stream;
    pub mod api;
    pub mod callback_outage;
    pub mod callbacks;
    pub mod callflow;
    pub mod check_xml;
    // Opus and G.711 legs together (issue 17).
    pub mod codecs;
    pub mod crash_recovery;
    pub mod dialout;
    pub mod digest;
    pub mod echo;
    pub mod hostile;
    pub mod http_auth;
    // HTTP listener limits (issue 14): half-sent floods, trickles, per-source caps.
    pub mod http_limits;
    pub mod ivr;
    // Flood limits (issue 14): INVITEs per source, max_calls, SIP connections.
    pub mod limits;
    pub mod media_trust;
    pub mod plivo_sdk;
    // Participant recording and the per-role multichannel WAV (issue 16).
    pub mod participant_recording;
    pub mod recording;
    pub mod room;
    pub mod shutdown;
    pub mod sip_behaviour;
    pub mod sipp;
    pub mod srtp;
    pub mod tls;
    pub mod torture;
    pub mod trust;
    // Wideband rooms and shared encoding (issue 17).
    pub mod wideband;

    use std::net::SocketAddr;
    use std::path::Path;
    use std::time::Duration;

    use huddle_testkit::{poll_until, RtpPeer, ServerProcess, SipUa};
    use serde_json::Value;

    /// The account of the standard test configuration.
    pub const ACCOUNT: &str = "MAHUDDLEDEFAULT00000";

    /// A server with the standard test routes.
    pub fn server(extra: &str, rtp_ports: u16) -> ServerProcess {
        ServerProcess::start(Path::new(env!("CARGO_BIN_EXE_huddle")), extra, rtp_ports)
    }

    /// Calls `user` over UDP (PCMU and telephone-event offered) and expects it answered:
    /// returns the dialog, the RTP peer and where to send media.
    pub async fn answered(sip: SocketAddr, user: &str) -> (SipUa, RtpPeer, SocketAddr) {
        let mut ua = SipUa::udp(sip).await;
        let rtp = RtpPeer::bind().await;
        let ok = ua
            .invite(user, &SipUa::sdp(rtp.port(), &[0, 101]))
            .await
            .unwrap_or_else(|| panic!("{user}: no final response"));
        assert_eq!(ok.status(), 200, "{user}: {ok:?}");
        ua.ack().await;
        let media = ok.sdp_audio().expect("SDP answer with audio");
        (ua, rtp, media)
    }

    /// A client for one server's MPC REST API, authenticated like Plivo's SDKs.
    pub struct Api {
        http: reqwest::Client,
        base: String,
    }

    impl Api {
        /// The API of `srv`, paths relative to `/v1/Account/{ACCOUNT}/MultiPartyCall/`.
        pub fn new(srv: &ServerProcess) -> Api {
            Api {
                http: reqwest::Client::new(),
                base: format!("http://{}/v1/Account/{ACCOUNT}/MultiPartyCall/", srv.http),
            }
        }

        /// Sends `method` to `path` with an optional JSON body; the status and the JSON
        /// answer (Null when empty).
        pub async fn send(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
            let url = format!("{}{path}", self.base);
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let mut request = self
                .http
                .request(method, &url)
                .basic_auth(ACCOUNT, Some("change-me"));
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.expect("the API answers");
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            let value = if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap_or_else(|_| panic!("JSON body: {text}"))
            };
            (status, value)
        }

        /// GET `path`.
        pub async fn get(&self, path: &str) -> (u16, Value) {
            self.send("GET", path, None).await
        }

        /// Polls GET `path` until its JSON satisfies `holds`, for at most `within`; returns
        /// the JSON that did, or panics with the last one seen.
        pub async fn wait_json(
            &self,
            path: &str,
            within: Duration,
            holds: impl Fn(&Value) -> bool,
        ) -> Value {
            let last = std::cell::RefCell::new(Value::Null);
            let found = poll_until(within, || async {
                let (_, value) = self.get(path).await;
                let ok = holds(&value);
                *last.borrow_mut() = value;
                ok.then(|| last.borrow().clone())
            })
            .await;
            let last = last.into_inner();
            found.unwrap_or_else(|| panic!("GET {path} did not reach the condition: {last}"))
        }
    }
}
