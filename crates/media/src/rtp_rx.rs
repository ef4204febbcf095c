//! Receive-side RTP: validation, symmetric-RTP latching, sequence tracking.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use thiserror::Error;

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

/// A validated packet borrowed from the receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpView<'a> {
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
    /// Payload, without CSRCs, header extension and padding.
    pub payload: &'a [u8],
}

/// Parses and validates one datagram in place (RFC 3550 §5.1, §5.3.1): the receive path runs
/// 50 times a second per leg, so it reads the fixed header by hand instead of building an
/// `rtp::packet::Packet`, which allocates. Every length field is checked against the datagram.
pub fn parse_slice(data: &[u8]) -> Result<RtpView<'_>, RtpError> {
    if data.len() < 12 {
        return Err(RtpError::TooShort);
    }
    if data[0] >> 6 != 2 {
        return Err(RtpError::BadVersion);
    }
    let csrc_count = usize::from(data[0] & 0x0F);
    let mut start = 12 + 4 * csrc_count;
    if data[0] & 0x10 != 0 {
        let ext = data.get(start..start + 4).ok_or(RtpError::Malformed)?;
        let words = usize::from(u16::from_be_bytes([ext[2], ext[3]]));
        start += 4 + 4 * words;
    }
    let mut end = data.len();
    if data[0] & 0x20 != 0 {
        let padding = usize::from(data[end - 1]);
        if padding == 0 || padding > end.saturating_sub(start) {
            return Err(RtpError::Malformed);
        }
        end -= padding;
    }
    if start > end {
        return Err(RtpError::Malformed);
    }
    Ok(RtpView {
        payload_type: data[1] & 0x7F,
        sequence: u16::from_be_bytes([data[2], data[3]]),
        timestamp: u32::from_be_bytes([data[4], data[5], data[6], data[7]]),
        ssrc: u32::from_be_bytes([data[8], data[9], data[10], data[11]]),
        marker: data[1] & 0x80 != 0,
        payload: &data[start..end],
    })
}

/// Parses and validates one datagram, keeping the payload as a zero-copy slice of it.
pub fn parse(datagram: Bytes) -> Result<RtpPacket, RtpError> {
    let view = parse_slice(&datagram)?;
    let offset = view.payload.as_ptr() as usize - datagram.as_ptr() as usize;
    Ok(RtpPacket {
        payload_type: view.payload_type,
        sequence: view.sequence,
        timestamp: view.timestamp,
        ssrc: view.ssrc,
        marker: view.marker,
        payload: datagram.slice(offset..offset + view.payload.len()),
    })
}

/// What to do with a packet from a given source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatchDecision {
    /// Accept: it is the latched (or just latched) source.
    Accept,
    /// Accept, and this packet latched the source.
    Latched,
    /// From somebody else: ignore and count, and never answer it.
    Foreign,
}

/// Whom a leg takes media from (design.md, "Media trust").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LatchPolicy {
    /// Only the address the peer's SDP signalled: a packet from anywhere else is foreign, so
    /// nobody who merely guesses the port can be heard or receive the mix.
    Signalled,
    /// For phones behind NAT, whose SDP carries a private address: the first packet from the
    /// IP the call's SIP came from (any port), or from the signalled address, fixes the peer.
    SignallingIp(IpAddr),
}

/// The media source of a leg under its [`LatchPolicy`]; once fixed, only that source is
/// heard and our packets go to it.
#[derive(Debug, Clone)]
pub struct Latch {
    expected: SocketAddr,
    policy: LatchPolicy,
    latched: Option<SocketAddr>,
}

impl Latch {
    /// A latch for media signalled at `expected`.
    pub fn new(expected: SocketAddr, policy: LatchPolicy) -> Self {
        let mut latch = Latch {
            expected,
            policy,
            latched: None,
        };
        latch.reset(expected);
        latch
    }

    /// Decides on a packet from `source`, latching it when it is the first acceptable one.
    pub fn check(&mut self, source: SocketAddr) -> LatchDecision {
        let decision = self.peek(source);
        if decision == LatchDecision::Latched {
            self.commit(source);
        }
        decision
    }

    /// What [`Latch::check`] would decide, without latching: with SRTP the packet must
    /// authenticate before it may fix the peer.
    #[inline]
    pub fn peek(&self, source: SocketAddr) -> LatchDecision {
        match (self.latched, self.policy) {
            (Some(l), _) if l == source => LatchDecision::Accept,
            (None, LatchPolicy::SignallingIp(ip))
                if source.ip() == ip || source == self.expected =>
            {
                LatchDecision::Latched
            }
            _ => LatchDecision::Foreign,
        }
    }

    /// Fixes the peer at `source` (after [`Latch::peek`] said [`LatchDecision::Latched`]).
    pub fn commit(&mut self, source: SocketAddr) {
        self.latched = Some(source);
    }

    /// The source media is taken from, once known: the signalled address from the start
    /// under [`LatchPolicy::Signalled`], the latched one under the NAT policy.
    pub fn peer(&self) -> Option<SocketAddr> {
        self.latched
    }

    /// Where to send: the latched source, else the SDP address.
    pub fn send_to(&self) -> SocketAddr {
        self.latched.unwrap_or(self.expected)
    }

    /// A re-INVITE moved the remote: forget the latch.
    pub fn reset(&mut self, expected: SocketAddr) {
        self.expected = expected;
        // An unspecified address (c=0.0.0.0, the old way to hold) signals nobody to hear.
        let signalled = !expected.ip().is_unspecified() && expected.port() != 0;
        self.latched = match self.policy {
            LatchPolicy::Signalled if signalled => Some(expected),
            _ => None,
        };
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

    /// The hand-written parser agrees with the rtp crate on packets it marshals: CSRCs,
    /// header extensions and padding included.
    #[test]
    fn agrees_with_the_rtp_crate() {
        use webrtc_util::marshal::{Marshal, Unmarshal};
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for _ in 0..2000 {
            let csrc: Vec<u32> = (0..(next() % 4)).map(|_| next() as u32).collect();
            let extension = next() % 2 == 0;
            let padding = next() % 3 == 0;
            let payload: Vec<u8> = (0..(next() % 200)).map(|_| next() as u8).collect();
            let mut header = rtp::header::Header {
                version: 2,
                marker: next() % 2 == 0,
                payload_type: (next() % 128) as u8,
                sequence_number: next() as u16,
                timestamp: next() as u32,
                ssrc: next() as u32,
                csrc,
                ..Default::default()
            };
            if extension {
                header.extension = true;
                header.extension_profile = 0xBEDE;
                header
                    .set_extension(1, Bytes::from_static(&[1, 2, 3]))
                    .unwrap();
            }
            let mut packet = rtp::packet::Packet {
                header,
                payload: Bytes::from(payload),
            };
            // The crate pads to a 4-byte boundary.
            packet.header.padding = padding;
            let Ok(wire) = packet.marshal() else { continue };
            let mut buf = wire.clone();
            let theirs = rtp::packet::Packet::unmarshal(&mut buf).unwrap();
            let ours = parse_slice(&wire).unwrap();
            assert_eq!(ours.payload, &theirs.payload[..]);
            assert_eq!(ours.sequence, theirs.header.sequence_number);
            assert_eq!(ours.timestamp, theirs.header.timestamp);
            assert_eq!(ours.ssrc, theirs.header.ssrc);
            assert_eq!(ours.marker, theirs.header.marker);
            assert_eq!(ours.payload_type, theirs.header.payload_type);
        }
    }

    #[test]
    fn hostile_lengths_are_malformed_not_panics() {
        let mut ext_overrun = packet(2, 14).to_vec();
        ext_overrun[0] |= 0x10;
        assert_eq!(parse_slice(&ext_overrun), Err(RtpError::Malformed));
        let mut ext_words = packet(2, 20).to_vec();
        ext_words[0] |= 0x10;
        ext_words[14] = 0xFF; // 65k words of extension
        assert_eq!(parse_slice(&ext_words), Err(RtpError::Malformed));
        let mut pad_zero = packet(2, 20).to_vec();
        pad_zero[0] |= 0x20;
        assert_eq!(parse_slice(&pad_zero), Err(RtpError::Malformed));
        let mut pad_over = packet(2, 20).to_vec();
        pad_over[0] |= 0x20;
        pad_over[19] = 200;
        assert_eq!(parse_slice(&pad_over), Err(RtpError::Malformed));
        let mut pad_all = packet(2, 20).to_vec();
        pad_all[0] |= 0x20;
        pad_all[19] = 8;
        assert_eq!(parse_slice(&pad_all).unwrap().payload.len(), 0);
        for len in 0..40 {
            for first in [0x80u8, 0x9F, 0xBF, 0xFF] {
                let mut p = vec![0xEEu8; len];
                if let Some(b) = p.first_mut() {
                    *b = first;
                }
                let _ = parse_slice(&p);
            }
        }
    }

    #[test]
    fn the_signalled_address_is_the_only_source() {
        let sdp: SocketAddr = "10.0.0.1:4000".parse().unwrap();
        let same_ip: SocketAddr = "10.0.0.1:4002".parse().unwrap();
        let other: SocketAddr = "198.51.100.1:5000".parse().unwrap();
        let mut latch = Latch::new(sdp, LatchPolicy::Signalled);
        assert_eq!(latch.peer(), Some(sdp), "fixed before any packet");
        assert_eq!(latch.check(other), LatchDecision::Foreign);
        assert_eq!(
            latch.check(same_ip),
            LatchDecision::Foreign,
            "the port counts too"
        );
        assert_eq!(latch.check(sdp), LatchDecision::Accept);
        assert_eq!(latch.send_to(), sdp);
        let moved: SocketAddr = "10.0.0.9:6000".parse().unwrap();
        latch.reset(moved);
        assert_eq!(
            latch.check(sdp),
            LatchDecision::Foreign,
            "the old address is gone"
        );
        assert_eq!(latch.check(moved), LatchDecision::Accept);
    }

    #[test]
    fn held_sdp_addresses_accept_nobody() {
        let mut latch = Latch::new("0.0.0.0:4000".parse().unwrap(), LatchPolicy::Signalled);
        assert_eq!(latch.peer(), None);
        assert_eq!(
            latch.check("0.0.0.0:4000".parse().unwrap()),
            LatchDecision::Foreign
        );
        assert_eq!(
            latch.check("10.0.0.1:4000".parse().unwrap()),
            LatchDecision::Foreign
        );
    }

    #[test]
    fn behind_nat_the_signalling_ip_latches_on_any_port() {
        let sdp: SocketAddr = "192.168.1.20:4000".parse().unwrap();
        let sip_ip: IpAddr = "203.0.113.9".parse().unwrap();
        let nat: SocketAddr = "203.0.113.9:61000".parse().unwrap();
        let other: SocketAddr = "198.51.100.1:5000".parse().unwrap();
        let mut latch = Latch::new(sdp, LatchPolicy::SignallingIp(sip_ip));
        assert_eq!(latch.peer(), None);
        assert_eq!(latch.send_to(), sdp);
        assert_eq!(
            latch.check(other),
            LatchDecision::Foreign,
            "a stranger never latches"
        );
        assert_eq!(latch.check(nat), LatchDecision::Latched);
        assert_eq!(latch.check(nat), LatchDecision::Accept);
        assert_eq!(
            latch.check("203.0.113.9:61002".parse().unwrap()),
            LatchDecision::Foreign,
            "latched: another port of the same IP is foreign"
        );
        assert_eq!(latch.send_to(), nat);
        assert_eq!(latch.peer(), Some(nat));
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
            // The first packet sets the highest sequence itself, so that a stream starting at
            // 0 is not taken for one that wrapped.
            *self = RxStats {
                ssrc: Some(ssrc),
                base_seq: u32::from(seq),
                max_seq: seq,
                ..Default::default()
            };
        } else {
            let delta = seq.wrapping_sub(self.max_seq);
            if delta < 0x8000 && delta != 0 {
                if seq < self.max_seq {
                    self.cycles += 1 << 16;
                }
                self.max_seq = seq;
            }
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
    fn a_stream_starting_at_sequence_zero_has_not_wrapped() {
        let mut s = RxStats::default();
        for seq in 0..10u16 {
            s.on_packet(7, seq, u32::from(seq) * 160, u32::from(seq) * 160);
        }
        let r = s.report().unwrap();
        assert_eq!(r.highest_seq, 9);
        assert_eq!(r.total_lost, 0);
    }

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
