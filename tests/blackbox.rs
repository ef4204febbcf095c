//! Black-box tests: each starts `huddle serve` and talks SIP, RTP and HTTP to it over sockets.

mod blackbox {
    pub mod callflow;
    pub mod check_xml;
    pub mod echo;
    pub mod hostile;
    pub mod room;
    pub mod shutdown;
    pub mod sip_behaviour;
    pub mod sipp;
    pub mod torture;

    use std::path::Path;

    use huddle_testkit::ServerProcess;

    /// A server with the standard test routes.
    pub fn server(extra: &str, rtp_ports: u16) -> ServerProcess {
        ServerProcess::start(Path::new(env!("CARGO_BIN_EXE_huddle")), extra, rtp_ports)
    }
}
