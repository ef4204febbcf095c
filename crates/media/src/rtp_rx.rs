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

/// RFC 3550 Appendix A.1/A.3/A.8 receive statistics for RTCP report blocks.
#[derive(Debug, Clone, Default)]
pub struct RxStats {
    ssrc: Option<u32>,
    base_seq: u32,
    max_seq: u16,
    cycles: u32,
    received: u32,
    expected_prior: u32,
    received_prior: u32,
    /// Interarrival jitter in timestamp units, scaled by 16 as in A.8.
    jitter_q4: u32,
    last_transit: Option<i64>,
}

/// One RTCP report block's figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportFigures {
    /// Source reported on.
    pub ssrc: u32,
    /// Loss since the previous report, 1/256 units.
    pub fraction_lost: u8,
    /// Cumulative packets lost.
    pub total_lost: u32,
    /// Extended highest sequence number received.
    pub highest_seq: u32,
    /// Interarrival jitter, timestamp units.
    pub jitter: u32,
}

impl RxStats {
    /// Records a packet; `arrival` is the arrival time in timestamp units (clock rate).
    pub fn on_packet(&mut self, ssrc: u32, seq: u16, timestamp: u32, arrival: u32) {
        if self.ssrc != Some(ssrc) {
            // A new source (or an SSRC change): start over, as RFC 3550 A.1 does on a restart.
            *self = RxStats {
                ssrc: Some(ssrc),
                base_seq: u32::from(seq),
                max_seq: seq.wrapping_sub(1),
                ..Default::default()
            };
        }
        let delta = seq.wrapping_sub(self.max_seq);
        if delta < 0x8000 && delta != 0 {
            if seq < self.max_seq {
                self.cycles += 1 << 16;
            }
            self.max_seq = seq;
        }
        self.received += 1;
        let transit = i64::from(arrival) - i64::from(timestamp);
        if let Some(last) = self.last_transit {
            let d = (transit - last).unsigned_abs().min(u64::from(u32::MAX)) as u32;
            // J += (|D| - J) / 16, kept scaled by 16.
            self.jitter_q4 = self.jitter_q4 + d - ((self.jitter_q4 + 8) >> 4);
        }
        self.last_transit = Some(transit);
    }

    /// Figures for the next report (updates the interval counters).
    pub fn report(&mut self) -> Option<ReportFigures> {
        let ssrc = self.ssrc?;
        let highest = self.cycles + u32::from(self.max_seq);
        let expected = highest.wrapping_sub(self.base_seq).wrapping_add(1);
        let total_lost = expected.saturating_sub(self.received);
        let expected_interval = expected.wrapping_sub(self.expected_prior);
        let received_interval = self.received.wrapping_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = self.received;
        let lost_interval = expected_interval.saturating_sub(received_interval);
        let fraction_lost = (lost_interval << 8)
            .checked_div(expected_interval)
            .map_or(0, |f| f.min(255) as u8);
        Some(ReportFigures {
            ssrc,
            fraction_lost,
            total_lost: total_lost.min(0x7F_FFFF),
            highest_seq: highest,
            jitter: self.jitter_q4 >> 4,
        })
    }
}

#[cfg(test)]
mod stats_tests {
    use super::*;

    #[test]
    fn loss_and_jitter() {
        let mut s = RxStats::default();
        // 10 packets, seq 65530..=65539 across the wrap, with 2 missing, perfectly paced.
        for i in 0..10u32 {
            if i == 3 || i == 7 {
                continue;
            }
            let seq = 65530u16.wrapping_add(i as u16);
            s.on_packet(7, seq, i * 160, 1000 + i * 160);
        }
        let r = s.report().unwrap();
        assert_eq!(r.total_lost, 2);
        assert_eq!(r.fraction_lost, (2 * 256 / 10) as u8);
        assert_eq!(r.highest_seq, (1 << 16) + 3);
        assert_eq!(r.jitter, 0, "perfect pacing has no jitter");
        // Now packets arrive 40 units early/late alternately: jitter grows.
        for i in 10..60u32 {
            let wobble = if i % 2 == 0 { 40 } else { 0 };
            s.on_packet(
                7,
                65530u16.wrapping_add(i as u16),
                i * 160,
                1000 + i * 160 + wobble,
            );
        }
        let r = s.report().unwrap();
        assert_eq!(r.fraction_lost, 0);
        assert!(r.jitter > 20 && r.jitter <= 40, "{}", r.jitter);
    }
}
