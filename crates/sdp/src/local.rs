//! Our side of a negotiation.

use std::net::IpAddr;

use crate::direction::Direction;

/// Packet time we use when the peer does not ask for one, in milliseconds.
pub const DEFAULT_PTIME: u32 = 20;

/// What we advertise in our offers and answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMedia {
    /// Address for o= and c= (`IN IP4` or `IN IP6` follows from it): the advertised address,
    /// not necessarily the one the socket is bound to.
    pub ip: IpAddr,
    /// Our RTP port (RTCP is on the next port).
    pub rtp_port: u16,
    /// o= session id; fixed for the life of the dialog.
    pub session_id: u64,
    /// o= session version. The caller increments it for every new offer or answer in the
    /// dialog, and keeps it when re-sending an unchanged description (RFC 3264 §8).
    pub session_version: u64,
    /// o= username; anything that is not a single visible token is written as `-`.
    pub username: String,
    /// What we are willing to do: sendrecv normally, sendonly when we hold the peer
    /// (we play it music but do not listen), inactive to stop both ways.
    pub direction: Direction,
}

impl LocalMedia {
    /// Our usual side: username `huddle`, sendrecv.
    pub fn new(ip: IpAddr, rtp_port: u16, session_id: u64, session_version: u64) -> LocalMedia {
        LocalMedia {
            ip,
            rtp_port,
            session_id,
            session_version,
            username: "huddle".to_string(),
            direction: Direction::SendRecv,
        }
    }
}
