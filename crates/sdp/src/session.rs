//! What we keep of a parsed session description.

use std::net::IpAddr;

use crate::direction::Direction;

/// The o= line. Its identity (everything but the version) stays the same for the life of a
/// session; the version changes whenever the description does (RFC 3264 §8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `<username>`, `-` when the peer has none.
    pub username: String,
    /// `<sess-id>`.
    pub session_id: u64,
    /// `<sess-version>`.
    pub session_version: u64,
    /// `<unicast-address>` as written (not necessarily where media goes).
    pub address: String,
}

impl Origin {
    /// Same session (username, id, address), ignoring the version.
    pub fn same_session(&self, other: &Origin) -> bool {
        self.username == other.username
            && self.session_id == other.session_id
            && self.address == other.address
    }
}

/// One RTP payload format offered on an m= line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpFormat {
    /// Payload type, 0..=127.
    pub payload_type: u8,
    /// Encoding name from `a=rtpmap`, or from the static table when rtpmap is absent.
    pub encoding: String,
    /// Clock rate; 0 when the offer gave none and the payload type is not in the static table
    /// (such a format never matches a codec).
    pub clock_rate: u32,
    /// Channels (1 unless rtpmap says otherwise).
    pub channels: u8,
    /// `a=fmtp` parameters, as written.
    pub fmtp: Option<String>,
}

/// `a=rtcp` (RFC 3605): where the peer wants RTCP when it is not on RTP port + 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtcpAttribute {
    /// RTCP port.
    pub port: u16,
    /// RTCP address, when it differs from the connection address.
    pub address: Option<IpAddr>,
}

/// One m= line and what applies to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaDescription {
    /// Media type as written: `audio`, `video`, `image`, ...
    pub kind: String,
    /// Transport port; 0 means the stream is disabled or rejected.
    pub port: u16,
    /// The optional `/<number of ports>` after the port.
    pub port_count: Option<u16>,
    /// Transport as written: `RTP/AVP`, `udptl`, `RTP/SAVPF`, ...
    pub proto: String,
    /// Format tokens as written, kept so a rejected line can be mirrored in the answer.
    pub formats: Vec<String>,
    /// For RTP transports, the payload formats we could identify, in the offerer's order.
    /// Dynamic payload types without an `a=rtpmap` are left out.
    pub rtp_formats: Vec<RtpFormat>,
    /// Connection address: this line's c= if it has one, else the session's.
    pub connection: Option<IpAddr>,
    /// Direction: this line's attribute if it has one, else the session's, else sendrecv.
    pub direction: Direction,
    /// `a=ptime`, in milliseconds.
    pub ptime: Option<u32>,
    /// `a=maxptime`, in milliseconds.
    pub maxptime: Option<u32>,
    /// `a=rtcp`, if present.
    pub rtcp: Option<RtcpAttribute>,
    /// `a=rtcp-mux` is present (RFC 5761).
    pub rtcp_mux: bool,
    /// The `a=crypto` values (RFC 4568), as written, in order.
    pub crypto: Vec<String>,
}

impl MediaDescription {
    /// An `audio` line.
    pub fn is_audio(&self) -> bool {
        self.kind.eq_ignore_ascii_case("audio")
    }

    /// Plain RTP/AVP.
    pub fn is_rtp_avp(&self) -> bool {
        self.proto.eq_ignore_ascii_case("RTP/AVP")
    }

    /// SRTP with SDES keys, RTP/SAVP (AVPF and DTLS profiles are not answered).
    pub fn is_rtp_savp(&self) -> bool {
        self.proto.eq_ignore_ascii_case("RTP/SAVP")
    }

    /// The old RFC 2543 way of putting a call on hold: a connection address of 0.0.0.0
    /// (or `::`). It means "do not send me anything" (RFC 3264 §8.4).
    pub fn connection_hold(&self) -> bool {
        self.connection.is_some_and(|a| a.is_unspecified())
    }

    /// The direction once the RFC 2543 hold is taken into account: with c=0.0.0.0 the peer
    /// receives nothing, whatever its direction attribute says.
    pub fn effective_direction(&self) -> Direction {
        if self.connection_hold() {
            Direction::from_flags(self.direction.sends(), false)
        } else {
            self.direction
        }
    }

    /// The format with this payload type.
    pub fn rtp_format(&self, payload_type: u8) -> Option<&RtpFormat> {
        self.rtp_formats
            .iter()
            .find(|f| f.payload_type == payload_type)
    }
}

/// A parsed session description: an offer we received, or the answer to ours.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionOffer {
    /// The o= line.
    pub origin: Origin,
    /// Session-level c= address.
    pub connection: Option<IpAddr>,
    /// Session-level direction attribute, if any.
    pub direction: Option<Direction>,
    /// Every m= line, in order.
    pub media: Vec<MediaDescription>,
}

impl SessionOffer {
    /// The first audio line with a non-zero port, and its index.
    pub fn first_active_audio(&self) -> Option<(usize, &MediaDescription)> {
        self.media
            .iter()
            .enumerate()
            .find(|(_, m)| m.is_audio() && m.port != 0)
    }
}
