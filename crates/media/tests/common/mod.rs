//! A started leg and the remote peer it talks to, shared by the media tests.
// Each test binary uses its own part of these helpers.
#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use huddle_media::codec::Codec;
use huddle_media::ports::PortAllocator;
use huddle_media::session::{Direction, MediaHandle, MediaParams, MediaSession};

/// The SSRC the peer's packets carry.
pub const PEER_SSRC: u32 = 7;

/// A PCMU packet of 160 identical samples, sequence `seq`, timestamp `seq × 160`.
pub fn rtp_packet(seq: u16, sample: u8) -> Vec<u8> {
    let mut p = vec![0x80, 0, 0, 0, 0, 0, 0, 0];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&PEER_SSRC.to_be_bytes());
    p.extend(std::iter::repeat_n(sample, 160));
    p
}

/// The remote end: its RTP socket and, on the next port, its RTCP socket.
pub struct Peer {
    /// Where the leg sends RTP.
    pub rtp: UdpSocket,
    /// Where the leg sends RTCP (the RTP port + 1).
    pub rtcp: UdpSocket,
}

impl Peer {
    fn bind() -> Peer {
        loop {
            let rtp = UdpSocket::bind("127.0.0.1:0").unwrap();
            let next = rtp.local_addr().unwrap().port().wrapping_add(1);
            if let Ok(rtcp) = UdpSocket::bind(("127.0.0.1", next)) {
                for socket in [&rtp, &rtcp] {
                    socket
                        .set_read_timeout(Some(Duration::from_secs(2)))
                        .unwrap();
                }
                return Peer { rtp, rtcp };
            }
        }
    }
}

/// A started leg on its own port range (`slot` keeps the tests of this process apart), its
/// peer, and the leg's RTP address.
pub async fn leg(slot: u16) -> (MediaHandle, Peer, SocketAddr) {
    let base = 42_000 + (std::process::id() % 400) as u16 * 16 + slot * 8;
    let ports = PortAllocator::new(base, base + 8);
    let session = MediaSession::bind(&ports, IpAddr::V4(Ipv4Addr::LOCALHOST))
        .await
        .unwrap();
    let ours = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), session.local_rtp_port());
    let peer = Peer::bind();
    let handle = session
        .start(MediaParams {
            remote_rtp: peer.rtp.local_addr().unwrap(),
            codec: Codec::Pcmu,
            payload_type: 0,
            telephone_event_pt: Some(101),
            remote_direction: Direction::SendRecv,
            jitter_min_ms: 20,
            jitter_max_ms: 200,
            rtp_timeout: None,
            latching: huddle_media::rtp_rx::LatchPolicy::Signalled,
            srtp: None,
        })
        .expect("no SRTP to refuse");
    (handle, peer, ours)
}
