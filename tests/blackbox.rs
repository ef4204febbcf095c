//! Black-box tests: each starts `huddle serve` and talks SIP, RTP and HTTP to it over sockets.

mod blackbox {
    pub mod api;
    pub mod callbacks;
    pub mod callflow;
    pub mod check_xml;
    pub mod digest;
    pub mod echo;
    pub mod hostile;
    pub mod http_auth;
    pub mod media_trust;
    pub mod recording;
    pub mod room;
    pub mod shutdown;
    pub mod sip_behaviour;
    pub mod sipp;
    pub mod srtp;
    pub mod tls;
    pub mod torture;
    pub mod trust;

    use std::net::SocketAddr;
    use std::path::Path;

    use huddle_testkit::{RtpPeer, ServerProcess, SipUa};

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
}
