//! Receive-side RTP: validation, symmetric-RTP latching, sequence tracking.

use std::net::SocketAddr;

use bytes::Bytes;
use thiserror::Error;
use webrtc_util::marshal::Unmarshal;

/// Why a packet was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RtpError {
    /// Shorter than the 12-byte header.
    #[error("packet too short")]
    TooShort,
    /// Version is not 2.
    #[error("RTP version is not 2")]
    BadVersion,
    /// Header fields overrun the packet (CSRC, extension, padding).
    #[error("malformed RTP header")]
    Malformed,
}

/// A validated packet's fields we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket {
    /// Payload type.
    pub payload_type: u8,
    /// Sequence number.
    pub sequence: u16,
    /// Timestamp.
    pub timestamp: u32,
    /// SSRC.
    pub ssrc: u32,
    /// Marker bit.
    pub marker: bool,
    /// Payload (zero-copy slice of the datagram).
    pub payload: Bytes,
}

/// Parses and validates one datagram.
pub fn parse(datagram: Bytes) -> Result<RtpPacket, RtpError> {
    if datagram.len() < 12 {
        return Err(RtpError::TooShort);
    }
    if datagram[0] >> 6 != 2 {
        return Err(RtpError::BadVersion);
    }
    let mut buf = datagram;
    let packet = rtp::packet::Packet::unmarshal(&mut buf).map_err(|_| RtpError::Malformed)?;
    Ok(RtpPacket {
        payload_type: packet.header.payload_type,
        sequence: packet.header.sequence_number,
        timestamp: packet.header.timestamp,
        ssrc: packet.header.ssrc,
        marker: packet.header.marker,
        payload: packet.payload,
    })
}

/// What to do with a packet from a given source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatchDecision {
    /// Accept: it is the latched (or just latched) source.
    Accept,
    /// Accept, and this packet latched the source.
    Latched,
    /// From somebody else after latching: ignore and count.
    Foreign,
}

/// Symmetric RTP (RFC 4961 practice): lock onto the first source, preferring the address the
/// SDP announced; afterwards only that source is heard and our packets go back to it.
#[derive(Debug, Clone)]
pub struct Latch {
    expected: SocketAddr,
    latched: Option<SocketAddr>,
}

impl Latch {
    /// A latch expecting media from the SDP address.
    pub fn new(expected: SocketAddr) -> Self {
        Latch {
            expected,
            latched: None,
        }
    }

    /// Decides on a packet from `source`. Before latching any source is taken: the SDP address
    /// first, else the first packet (a caller behind NAT sends from a translated address).
    pub fn check(&mut self, source: SocketAddr) -> LatchDecision {
        match self.latched {
            Some(l) if l == source => LatchDecision::Accept,
            Some(_) => LatchDecision::Foreign,
            None => {
                self.latched = Some(source);
                LatchDecision::Latched
            }
        }
    }

    /// Where to send: the latched source, else the SDP address.
    pub fn send_to(&self) -> SocketAddr {
        self.latched.unwrap_or(self.expected)
    }

    /// A re-INVITE moved the remote: forget the latch.
    pub fn reset(&mut self, expected: SocketAddr) {
        self.expected = expected;
        self.latched = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(version: u8, len: usize) -> Bytes {
        let mut p = vec![0u8; len];
        if !p.is_empty() {
            p[0] = version << 6;
        }
        Bytes::from(p)
    }

    #[test]
    fn validation() {
        assert_eq!(parse(packet(2, 5)), Err(RtpError::TooShort));
        assert_eq!(parse(packet(1, 172)), Err(RtpError::BadVersion));
        let mut csrc_overrun = packet(2, 12).to_vec();
        csrc_overrun[0] |= 0x0F; // 15 CSRCs claimed, none present
        assert_eq!(parse(Bytes::from(csrc_overrun)), Err(RtpError::Malformed));
        let ok = parse(packet(2, 172)).unwrap();
        assert_eq!(ok.payload.len(), 160);
    }

    #[test]
    fn latching_keeps_the_first_source() {
        let sdp: SocketAddr = "10.0.0.1:4000".parse().unwrap();
        let nat: SocketAddr = "203.0.113.9:61000".parse().unwrap();
        let other: SocketAddr = "198.51.100.1:5000".parse().unwrap();
        let mut latch = Latch::new(sdp);
        assert_eq!(latch.send_to(), sdp);
        assert_eq!(latch.check(nat), LatchDecision::Latched);
        assert_eq!(latch.check(nat), LatchDecision::Accept);
        assert_eq!(latch.check(other), LatchDecision::Foreign);
        assert_eq!(latch.send_to(), nat);
    }
}
